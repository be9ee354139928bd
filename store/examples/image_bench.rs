//! Timing the store's image operations, for `bench/load`.
//!
//! `image_bench load <store-root> <archive.tar>` opens a store (overlay
//! driver) at `store-root`, loads the archive and prints one line: the
//! elapsed seconds and the names the archive set.

use std::error::Error;
use std::fs::File;
use std::path::Path;
use std::time::Instant;

use berth_store::Store;
use berth_store::snapshot::Driver;

fn load(root: &Path, archive: &Path) -> Result<(), Box<dyn Error>> {
    let start = Instant::now();
    let store = Store::open(root, Some(Driver::Overlay))?;
    // Unbuffered: the store reads layers in large chunks, and an archive
    // has few headers.
    let names = store.load(&mut File::open(archive)?)?;
    let secs = start.elapsed().as_secs_f64();
    println!("load {secs:.3} s {}", names.join(" "));
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [cmd, root, archive] if cmd == "load" => load(Path::new(root), Path::new(archive)),
        _ => Err("usage: image_bench load <store-root> <archive.tar>".into()),
    }
}
