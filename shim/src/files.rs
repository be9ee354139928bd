//! Files the shim's caller reads: written whole or not at all.

use std::io::Write;
use std::path::Path;

use crate::error::{Result, io};

pub const SHIM_PID: &str = "shim.pid";
pub const INIT_PID: &str = "init.pid";
pub const EXIT: &str = "exit.json";
pub const START_ERROR: &str = "start-error";
pub const SHIM_LOG: &str = "shim.log";
pub const SOCKET: &str = "shim.sock";

/// Write `data` to `dir/name` through a temporary file and a rename, so a
/// reader sees the old file, or none, or all of the new one.
///
/// Not fsynced: these files describe processes of this boot, read by a
/// berthd of this boot (after a crash of berthd the page cache still holds
/// them); after a crash of the host every container they speak of is gone
/// anyway. A sync here would cost every start and every exit a disk flush.
pub fn write_atomic(dir: &Path, name: &str, data: &[u8]) -> Result<()> {
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = std::fs::File::create(&tmp).map_err(io("creating", &tmp))?;
    f.write_all(data).map_err(io("writing", &tmp))?;
    std::fs::rename(&tmp, &path).map_err(io("renaming to", &path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole() {
        let d = tempfile::tempdir().unwrap();
        write_atomic(d.path(), "x", b"1").unwrap();
        write_atomic(d.path(), "x", b"22").unwrap();
        assert_eq!(std::fs::read(d.path().join("x")).unwrap(), b"22");
        let names: Vec<_> = std::fs::read_dir(d.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file left");
    }
}
