//! Timing layer apply and create, for `bench/layers`.
//!
//! `layer_bench apply <layer> <dest>` applies a layer (any compression)
//! into the existing directory `dest`, deleting whiteouts, and prints one
//! line: the elapsed seconds and the layer's diff id.
//!
//! `layer_bench create <dir> <out>` writes the gzip layer of the whole tree
//! `dir` to `out` (default level, a compressing thread per CPU) and prints
//! one line: the elapsed seconds and the layer's digest.

use std::error::Error;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Instant;

use berth_store::layer::{self, ApplyOptions, Changes, Compression, CreateOptions, WhiteoutMode};

fn apply(layer: &Path, dest: &Path) -> Result<(), Box<dyn Error>> {
    let start = Instant::now();
    let mut f = File::open(layer)?;
    let opts = ApplyOptions {
        whiteouts: WhiteoutMode::Delete,
    };
    let applied = layer::apply(&mut f, dest, &opts)?;
    let secs = start.elapsed().as_secs_f64();
    println!("apply {secs:.3} s {}", applied.diff_id);
    Ok(())
}

fn create(dir: &Path, out: &Path) -> Result<(), Box<dyn Error>> {
    let start = Instant::now();
    let mut w = BufWriter::with_capacity(1 << 20, File::create(out)?);
    let changes = Changes::Diff {
        lower: None,
        upper: dir.to_path_buf(),
    };
    let opts = CreateOptions {
        compression: Compression::Gzip,
        level: None,
        threads: 0,
    };
    let created = layer::create(&changes, &mut w, &opts)?;
    w.flush()?;
    let secs = start.elapsed().as_secs_f64();
    println!("create {secs:.3} s {}", created.digest);
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [cmd, layer, dest] if cmd == "apply" => apply(Path::new(layer), Path::new(dest)),
        [cmd, dir, out] if cmd == "create" => create(Path::new(dir), Path::new(out)),
        _ => Err("usage: layer_bench apply <layer> <dest> | create <dir> <out>".into()),
    }
}
