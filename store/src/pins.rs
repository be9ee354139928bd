//! Pins: images kept without a name. The builder pins each step's image
//! (its cache) and an untagged build's result; collection keeps what a
//! pin reaches as it keeps what a name reaches, and an image id finds a
//! pinned image as it finds a named one.
//!
//! One file per pinned manifest, `pins/<manifest hex>`, holding the
//! config digest: nothing to rewrite as a whole, and a crash leaves either
//! the pin or none.

use std::path::PathBuf;

use crate::blobs::write_atomic;
use crate::digest::Digest;
use crate::store::{Result, Store, StoreError};

impl Store {
    fn pins_dir(&self) -> PathBuf {
        self.root().join("pins")
    }

    /// Keep the image with manifest `manifest` (config `config`) until
    /// [`Store::unpin`].
    pub fn pin(&self, manifest: &Digest, config: &Digest) -> Result<()> {
        let dir = self.pins_dir();
        std::fs::create_dir_all(&dir).map_err(|source| StoreError::Io {
            path: dir.clone(),
            source,
        })?;
        write_atomic(&dir.join(manifest.digest()), config.to_string().as_bytes())?;
        Ok(())
    }

    pub fn unpin(&self, manifest: &Digest) -> Result<()> {
        let path = self.pins_dir().join(manifest.digest());
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StoreError::Io { path, source }),
        }
    }

    /// Every pin: (manifest, config).
    pub fn pins(&self) -> Vec<(Digest, Digest)> {
        let Ok(rd) = std::fs::read_dir(self.pins_dir()) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Ok(manifest) = format!("sha256:{name}").parse::<Digest>() else {
                continue;
            };
            let Some(config) = std::fs::read_to_string(e.path())
                .ok()
                .and_then(|s| s.trim().parse::<Digest>().ok())
            else {
                continue;
            };
            out.push((manifest, config));
        }
        out.sort_by_key(|(m, _)| m.to_string());
        out
    }
}
