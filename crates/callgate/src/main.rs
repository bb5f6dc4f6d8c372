//! callgate: WebRTC-to-SIP gateway appliance.

mod config;

use clap::Parser;
use config::Config;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(name = "callgate", version, about = "WebRTC-to-SIP gateway")]
struct Cli {
    /// TOML configuration file; embedded defaults apply without one.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match &cli.config {
        Some(path) => match Config::load(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("callgate: {e}");
                return ExitCode::from(2);
            }
        },
        None => Config::default(),
    };
    println!("callgate {}", env!("CARGO_PKG_VERSION"));
    match &cli.config {
        Some(p) => println!("# configuration from {}", p.display()),
        None => println!("# embedded default configuration"),
    }
    print!("{}", config.to_display_toml());
    ExitCode::SUCCESS
}
