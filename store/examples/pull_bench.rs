//! `pull_bench <store-root> <host:port/repo:tag>`: pull an image from a
//! plain-HTTP registry into a store (download, verify, unpack) and print
//! the seconds it took. Used by bench/pull.

use std::path::Path;
use std::time::Instant;

use berth_store::Store;
use berth_store::refs::ImageName;
use berth_store::registry::{Auth, Options, Platform, RegistryConfig};
use berth_store::snapshot::Driver;

fn main() {
    if let Err(e) = run() {
        eprintln!("pull_bench: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [root, reference] = args.as_slice() else {
        return Err("usage: pull_bench <store-root> <host:port/repo:tag>".into());
    };
    let name = ImageName::parse(reference)?;
    let config = RegistryConfig {
        insecure: vec![name.registry.clone()],
        ..RegistryConfig::default()
    };
    let store = Store::open(Path::new(root), Some(Driver::Overlay))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let started = Instant::now();
    let pulled = rt.block_on(store.pull(
        &config,
        &Auth::Anonymous,
        &name,
        &Platform::host(),
        &|_| {},
        &Options::default(),
    ))?;
    println!("{:.3} {}", started.elapsed().as_secs_f64(), pulled.manifest);
    Ok(())
}
