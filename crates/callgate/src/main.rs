//! callgate: WebRTC-to-SIP gateway appliance.

mod config;
mod dialplan;
mod relay;
mod server;
mod service;
mod trunks;
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
    /// Show the SIP trunks in the data dir.
    #[command(subcommand)]
    Trunk(TrunkCommand),
    /// Show the DIDs (inbound numbers) in the data dir.
    #[command(subcommand)]
    Did(DidCommand),
    /// Call detail records.
    #[command(subcommand)]
    Cdr(CdrCommand),
}

#[derive(Subcommand, Debug)]
enum TrunkCommand {
    /// List trunks.
    List,
}

#[derive(Subcommand, Debug)]
enum DidCommand {
    /// List DIDs.
    List {
        /// Only the DIDs arriving over this trunk.
        #[arg(long)]
        trunk: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
enum CdrCommand {
    /// Write CDRs as CSV (RFC 4180, oldest first, times in unix seconds).
    Export {
        /// Calls started at or after this time: unix seconds, an RFC 3339
        /// date-time (2024-06-01T12:00:00Z) or a date (2024-06-01, midnight
        /// UTC).
        #[arg(long, value_name = "TIME", value_parser = parse_time)]
        since: Option<i64>,
        /// Calls started before this time (same forms as --since).
        #[arg(long, value_name = "TIME", value_parser = parse_time)]
        until: Option<i64>,
        /// Only "inbound", "outbound" or "internal" calls.
        #[arg(long, value_parser = parse_direction)]
        direction: Option<store::Direction>,
        /// Only calls this user placed or received.
        #[arg(long)]
        user: Option<String>,
        /// Write to FILE instead of standard output.
        #[arg(long, short = 'o', value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

fn parse_time(s: &str) -> Result<i64, String> {
    web::parse_time(s)
}

fn parse_direction(s: &str) -> Result<store::Direction, String> {
    s.parse()
        .map_err(|_| format!("`{s}` is not one of \"inbound\", \"outbound\", \"internal\""))
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
        Some(Command::Trunk(TrunkCommand::List)) => trunk_list(&config),
        Some(Command::Did(DidCommand::List { trunk })) => did_list(&config, trunk.as_deref()),
        Some(Command::Cdr(CdrCommand::Export {
            since,
            until,
            direction,
            user,
            output,
        })) => {
            let filter = store::CdrFilter {
                since,
                until,
                direction,
                user,
            };
            cdr_export(&config, &filter, output.as_deref())
        }
        None => {
            init_logging();
            println!("callgate {}", env!("CARGO_PKG_VERSION"));
            match &cli.config {
                Some(p) => println!("# configuration from {}", p.display()),
                None => println!("# embedded default configuration"),
            }
            print!("{}", config.to_display_toml());
            server::run(config, cli.config.clone(), cli.data_dir.clone())
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

/// The live log filter, changed from the admin UI's settings.
static LOG_FILTER: std::sync::OnceLock<
    tracing_subscriber::reload::Handle<tracing_subscriber::EnvFilter, tracing_subscriber::Registry>,
> = std::sync::OnceLock::new();

/// Logs go to stderr; `RUST_LOG` overrides the default `info` level.
fn init_logging() {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    // Under systemd, structured entries go straight to the journal (call
    // id, user... as fields); otherwise text on stderr.
    let journal = service::journal_layer();
    let fmt = journal.is_none().then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
    });
    if tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(journal)
        .try_init()
        .is_ok()
    {
        let _ = LOG_FILTER.set(handle);
    }
}

/// Sets the log level (error, warn, info, debug, trace) while running,
/// unless `RUST_LOG` fixed the filter. Returns whether it applied.
pub fn set_log_level(level: &str) -> bool {
    if std::env::var_os("RUST_LOG").is_some() {
        return false;
    }
    let Some(handle) = LOG_FILTER.get() else {
        return false;
    };
    let Ok(filter) = tracing_subscriber::EnvFilter::try_new(level) else {
        return false;
    };
    let ok = handle.reload(filter).is_ok();
    if ok {
        *LOG_LEVEL
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(level.to_owned());
    }
    ok
}

static LOG_LEVEL: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// The log filter in force, as set by [`set_log_level`] or `RUST_LOG`.
pub fn log_level() -> String {
    LOG_LEVEL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "info".to_owned())
}

/// Path of the SQLite database inside the data dir.
fn db_path(config: &Config) -> PathBuf {
    config.data_dir.join("callgate.db")
}

fn trunk_list(config: &Config) -> Result<(), Box<dyn std::error::Error>> {
    let store = store::Store::open(&db_path(config))?;
    println!(
        "{:<20} {:<32} {:<9} {:<22} {:<8} DIAL PATTERNS",
        "NAME", "ADDRESS", "TRANSPORT", "REGISTER", "ENABLED"
    );
    for t in store.list_trunks()? {
        let register = match &t.registration {
            Some(r) if r.enabled => format!("yes ({})", r.username),
            Some(r) => format!("no ({})", r.username),
            None => "no".into(),
        };
        let host = if t.host.contains(':') {
            format!("[{}]", t.host)
        } else {
            t.host.clone()
        };
        println!(
            "{:<20} {:<32} {:<9} {:<22} {:<8} {}",
            t.name,
            format!("{host}:{}", t.port),
            t.transport,
            register,
            if t.enabled { "yes" } else { "no" },
            t.dial_patterns.join(" ")
        );
    }
    Ok(())
}

fn did_list(config: &Config, trunk: Option<&str>) -> Result<(), Box<dyn std::error::Error>> {
    let store = store::Store::open(&db_path(config))?;
    println!("{:<20} {:<20} USER", "NUMBER", "TRUNK");
    for d in store.list_dids(trunk)? {
        println!("{:<20} {:<20} {}", d.number, d.trunk, d.username);
    }
    Ok(())
}

/// Writes the CSV to `output` (created or truncated) or standard output.
fn cdr_export(
    config: &Config,
    filter: &store::CdrFilter,
    output: Option<&std::path::Path>,
) -> Result<(), Box<dyn std::error::Error>> {
    use std::io::Write;
    let store = store::Store::open(&db_path(config))?;
    match output {
        Some(path) => {
            let file = std::fs::File::create(path)
                .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
            let mut out = std::io::BufWriter::new(file);
            let n = store.export_cdrs_csv(filter, &mut out)?;
            out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
            eprintln!("exported {n} CDR(s) to {}", path.display());
        }
        None => {
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            match store.export_cdrs_csv(filter, &mut out) {
                // `callgate cdr export | head` closes the pipe early.
                Err(store::Error::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::BrokenPipe => {}
                other => {
                    other?;
                    out.flush()?;
                }
            }
        }
    }
    Ok(())
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
