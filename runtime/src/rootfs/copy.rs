//! Copying a directory tree with modes and owners, for `tmpcopyup`.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

pub fn copy_tree(src: &Path, dst: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(src)? {
        let entry = entry?;
        let from = entry.path();
        let to = dst.join(entry.file_name());
        let meta = std::fs::symlink_metadata(&from)?;
        let ft = meta.file_type();
        if ft.is_dir() {
            std::fs::create_dir(&to)?;
            copy_tree(&from, &to)?;
        } else if ft.is_file() {
            std::fs::copy(&from, &to)?;
        } else if ft.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&from)?, &to)?;
        } else {
            // Sockets, fifos and device nodes do not belong in a tmpfs seed.
            continue;
        }
        std::os::unix::fs::lchown(&to, Some(meta.uid()), Some(meta.gid()))?;
        if !ft.is_symlink() {
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(meta.mode() & 0o7777))?;
        }
    }
    let meta = std::fs::metadata(src)?;
    std::os::unix::fs::chown(dst, Some(meta.uid()), Some(meta.gid()))?;
    std::fs::set_permissions(dst, std::fs::Permissions::from_mode(meta.mode() & 0o7777))
}
