//! berth: parse the command line, run it, print the error as docker does.

use clap::Parser;

fn main() {
    let cli = berth_cli::args::Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("berth: starting the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let result = rt.block_on(berth_cli::run(cli));
    // Streams still open (a detached copy of stdin) must not hold us.
    rt.shutdown_background();
    if let Err(e) = result {
        let code = e.exit_code();
        if !matches!(e, berth_cli::CliError::Status(_)) {
            eprintln!("{e}");
        }
        std::process::exit(code);
    }
}
