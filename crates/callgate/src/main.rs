//! callgate: WebRTC-to-SIP gateway appliance.

mod config;
mod relay;
mod server;
mod users;

use clap::{Parser, Subcommand};
use config::Config;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(name = "callgate", version, about = "WebRTC-to-SIP gateway")]
struct Cli {
    /// TOML configuration file; embedded defaults apply without one.
    #[arg(long, short = 'c', value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    /// Overrides `data_dir` of the configuration.
    #[arg(long, value_name = "DIR", global = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the effective configuration and exit.
    PrintConfig,
    /// Manage SIP users in the data dir (works while the server runs).
    #[command(subcommand)]
    User(UserCommand),
}

#[derive(Subcommand, Debug)]
enum UserCommand {
    /// Add a user.
    Add {
        name: String,
        #[arg(long)]
        password: String,
        #[arg(long)]
        extension: Option<String>,
        #[arg(long)]
        display_name: Option<String>,
    },
    /// List users.
    List {
        /// Only users whose name, extension or display name contains this.
        filter: Option<String>,
    },
    /// Change a user's password.
    Passwd {
        name: String,
        #[arg(long)]
        password: String,
    },
    /// Remove a user and its registrations.
    Remove { name: String },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut config = match &cli.config {
        Some(path) => match Config::load(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("callgate: {e}");
                return ExitCode::from(2);
            }
        },
        None => Config::default(),
    };
    if let Some(dir) = &cli.data_dir {
        config.data_dir = dir.clone();
    }
    let result = match cli.command {
        Some(Command::PrintConfig) => {
            print!("{}", config.to_display_toml());
            Ok(())
        }
        Some(Command::User(cmd)) => user_command(&config, cmd),
        None => {
            init_logging();
            println!("callgate {}", env!("CARGO_PKG_VERSION"));
            match &cli.config {
                Some(p) => println!("# configuration from {}", p.display()),
                None => println!("# embedded default configuration"),
            }
            print!("{}", config.to_display_toml());
            server::run(config)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("callgate: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr; `RUST_LOG` overrides the default `info` level.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Path of the SQLite database inside the data dir.
fn db_path(config: &Config) -> PathBuf {
    config.data_dir.join("callgate.db")
}

fn user_command(config: &Config, cmd: UserCommand) -> Result<(), Box<dyn std::error::Error>> {
    let store = store::Store::open(&db_path(config))?;
    let realm = &config.sip.domain;
    match cmd {
        UserCommand::Add {
            name,
            password,
            extension,
            display_name,
        } => {
            if password.len() < 8 {
                return Err("--password: must be at least 8 characters".into());
            }
            let u = users::add(
                &store,
                realm,
                &name,
                &password,
                extension.as_deref(),
                display_name.as_deref(),
            )?;
            println!("added user {} (sip:{}@{realm})", u.username, u.username);
        }
        UserCommand::List { filter } => {
            let users = store.list_users(filter.as_deref(), 0, u32::MAX)?;
            println!(
                "{:<24} {:<10} {:<8} DISPLAY NAME",
                "USER", "EXTENSION", "ENABLED"
            );
            for u in users {
                println!(
                    "{:<24} {:<10} {:<8} {}",
                    u.username,
                    u.extension.as_deref().unwrap_or("-"),
                    if u.enabled { "yes" } else { "no" },
                    u.display_name.as_deref().unwrap_or("")
                );
            }
        }
        UserCommand::Passwd { name, password } => {
            if password.len() < 8 {
                return Err("--password: must be at least 8 characters".into());
            }
            users::passwd(&store, realm, &name, &password)?;
            println!("password of {name} changed");
        }
        UserCommand::Remove { name } => {
            store.remove_user(&name)?;
            store.remove_all_bindings(&format!("sip:{name}@{realm}"))?;
            println!("removed user {name}");
        }
    }
    Ok(())
}
