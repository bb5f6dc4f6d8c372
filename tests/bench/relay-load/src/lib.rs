//! Shared pieces of the relay benchmark tools: batched UDP I/O with kernel
//! receive timestamps, the test payload layout, a latency histogram and
//! /proc readings.
//!
//! Clock: every timestamp is CLOCK_REALTIME in nanoseconds, the clock the
//! kernel's SO_TIMESTAMPNS receive timestamps use, so the generator and the
//! echo (separate processes on the same machine) compare their readings
//! directly.

pub mod net;
pub mod payload;
pub mod procfs;
pub mod stats;

/// Command-line helpers: `--key value` pairs, no dependencies.
pub mod args {
    use std::collections::HashMap;

    /// Parsed `--key value` options.
    pub struct Args {
        tool: &'static str,
        usage: &'static str,
        map: HashMap<String, String>,
        flags: Vec<String>,
    }

    impl Args {
        /// Parses the process arguments; names in `flags` take no value.
        pub fn parse(tool: &'static str, usage: &'static str, flag_names: &[&str]) -> Self {
            Self::parse_after(tool, usage, flag_names, 1)
        }

        /// As [`Args::parse`], after the first `skip` arguments (program
        /// name, subcommand).
        pub fn parse_after(
            tool: &'static str,
            usage: &'static str,
            flag_names: &[&str],
            skip: usize,
        ) -> Self {
            let mut map = HashMap::new();
            let mut flags = Vec::new();
            let mut it = std::env::args().skip(skip);
            while let Some(a) = it.next() {
                if a == "-h" || a == "--help" {
                    println!("{usage}");
                    std::process::exit(0);
                }
                let Some(key) = a.strip_prefix("--") else {
                    die_usage(tool, usage, &format!("unexpected argument {a}"));
                };
                if flag_names.contains(&key) {
                    flags.push(key.to_string());
                    continue;
                }
                let v = it
                    .next()
                    .unwrap_or_else(|| die_usage(tool, usage, &format!("--{key} needs a value")));
                map.insert(key.to_string(), v);
            }
            Self {
                tool,
                usage,
                map,
                flags,
            }
        }

        /// Exits with the usage text.
        pub fn die(&self, msg: &str) -> ! {
            die_usage(self.tool, self.usage, msg)
        }

        /// Whether the flag was given.
        pub fn flag(&self, name: &str) -> bool {
            self.flags.iter().any(|f| f == name)
        }

        /// The raw value.
        pub fn get(&self, key: &str) -> Option<&str> {
            self.map.get(key).map(String::as_str)
        }

        /// The value parsed, or the default.
        pub fn or<T: std::str::FromStr>(&self, key: &str, default: T) -> T {
            match self.map.get(key) {
                Some(v) => v
                    .parse()
                    .unwrap_or_else(|_| self.die(&format!("bad value for --{key}: {v}"))),
                None => default,
            }
        }

        /// The value parsed; exits when absent.
        pub fn req<T: std::str::FromStr>(&self, key: &str) -> T {
            match self.map.get(key) {
                Some(v) => v
                    .parse()
                    .unwrap_or_else(|_| self.die(&format!("bad value for --{key}: {v}"))),
                None => self.die(&format!("--{key} is required")),
            }
        }

        /// A comma-separated list of numbers.
        pub fn list<T: std::str::FromStr>(&self, key: &str) -> Vec<T> {
            self.map
                .get(key)
                .map(|v| {
                    v.split([',', ' '])
                        .filter(|s| !s.is_empty())
                        .map(|s| {
                            s.parse()
                                .unwrap_or_else(|_| self.die(&format!("bad value in --{key}: {s}")))
                        })
                        .collect()
                })
                .unwrap_or_default()
        }
    }

    fn die_usage(tool: &str, usage: &str, msg: &str) -> ! {
        eprintln!("{tool}: {msg}\n{usage}");
        std::process::exit(2);
    }
}
