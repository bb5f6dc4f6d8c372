//! Runs a target over files (or directories of files) without AFL, so a
//! crashing input reproduces under a normal build with a backtrace:
//!
//! ```text
//! RUST_BACKTRACE=1 cargo run --no-default-features --bin replay -- sip_message fuzz/artifacts/...
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn files(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for e in entries {
            files(&e, out);
        }
    } else {
        out.push(path.to_owned());
    }
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let names: Vec<&str> = callgate_fuzz::TARGETS.iter().map(|(n, _)| *n).collect();
    let Some(target) = args.next().and_then(|n| callgate_fuzz::target(&n)) else {
        eprintln!(
            "usage: replay TARGET FILE|DIR...  (targets: {})",
            names.join(", ")
        );
        return ExitCode::from(2);
    };
    let mut inputs = Vec::new();
    for a in args {
        files(Path::new(&a), &mut inputs);
    }
    for path in &inputs {
        // Skip AFL's bookkeeping files in an output directory.
        if path.file_name().is_some_and(|n| n == "README.txt") {
            continue;
        }
        let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        eprintln!("{} ({} bytes)", path.display(), data.len());
        target(&data);
    }
    eprintln!("{} inputs ok", inputs.len());
    ExitCode::SUCCESS
}
