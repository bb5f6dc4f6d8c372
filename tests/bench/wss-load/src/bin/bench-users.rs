//! bench-users: writes the same SIP users for both servers of the
//! signalling benchmarks.
//!
//!   bench-users --dir DIR --realm 127.0.0.1 [--prefix u] [--first 10000]
//!               [--count 11000] [--password-prefix pw-] [--extra NAME:PASSWORD]...
//!
//! User i is `{prefix}{first+i}` with password `{password-prefix}{user}`;
//! each --extra adds one more. Writes
//!   DIR/users.toml         [[users]] blocks for the callgate config
//!   DIR/db/htable          Kamailio db_text table loaded into an htable at
//!                          start: key user, value HA1 = MD5(user:realm:password)
//!   DIR/db/version         Kamailio db_text table versions
//!   DIR/users.csv          sipp injection file of the prefixed users (SEQUENTIAL)

use md5::{Digest, Md5};
use std::fmt::Write as _;
use std::path::PathBuf;

fn die(msg: &str) -> ! {
    eprintln!("bench-users: {msg}");
    std::process::exit(2);
}

fn md5_hex(s: &str) -> String {
    Md5::digest(s.as_bytes())
        .iter()
        .fold(String::with_capacity(32), |mut o, b| {
            let _ = write!(o, "{b:02x}");
            o
        })
}

fn main() {
    let mut dir: Option<PathBuf> = None;
    let mut realm = "127.0.0.1".to_string();
    let mut prefix = "u".to_string();
    let mut first: u64 = 10000;
    let mut count: u64 = 11000;
    let mut pw_prefix = "pw-".to_string();
    let mut extra: Vec<(String, String)> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let v = args.next().unwrap_or_else(|| die(&format!("{a} needs a value")));
        match a.as_str() {
            "--dir" => dir = Some(v.into()),
            "--realm" => realm = v,
            "--prefix" => prefix = v,
            "--first" => first = v.parse().unwrap_or_else(|_| die("bad --first")),
            "--count" => count = v.parse().unwrap_or_else(|_| die("bad --count")),
            "--password-prefix" => pw_prefix = v,
            "--extra" => {
                let (n, p) = v.split_once(':').unwrap_or_else(|| die("--extra NAME:PASSWORD"));
                extra.push((n.into(), p.into()));
            }
            _ => die(&format!("unknown option {a}")),
        }
    }
    let dir = dir.unwrap_or_else(|| die("--dir is required"));
    let mut users: Vec<(String, String)> = extra;
    let mut csv = String::from("SEQUENTIAL\n");
    for i in 0..count {
        let name = format!("{prefix}{}", first + i);
        let pw = format!("{pw_prefix}{name}");
        let _ = writeln!(csv, "{name};{pw}");
        users.push((name, pw));
    }
    let mut toml = String::new();
    let mut ht = String::from(
        "id(int,auto) key_name(string) key_type(int) value_type(int) key_value(string) expires(int) \n",
    );
    for (i, (name, pw)) in users.iter().enumerate() {
        if pw.len() < 8 {
            die(&format!("password of {name} is shorter than 8 characters"));
        }
        let _ = writeln!(toml, "[[users]]\nname = \"{name}\"\npassword = \"{pw}\"\n");
        let ha1 = md5_hex(&format!("{name}:{realm}:{pw}"));
        // ':' separates db_text columns; key_type 0 = single value,
        // value_type 0 = string, expires 0 = never.
        let _ = writeln!(ht, "{}:{name}:0:0:{ha1}:0", i + 1);
    }
    let db = dir.join("db");
    std::fs::create_dir_all(&db).unwrap_or_else(|e| die(&format!("{}: {e}", db.display())));
    let write = |p: PathBuf, s: &str| {
        std::fs::write(&p, s).unwrap_or_else(|e| die(&format!("{}: {e}", p.display())))
    };
    write(dir.join("users.toml"), &toml);
    write(dir.join("users.csv"), &csv);
    write(db.join("htable"), &ht);
    write(
        db.join("version"),
        "id(int,auto) table_name(string) table_version(int) \n0:version:1\n0:htable:2\n",
    );
    eprintln!(
        "bench-users: {} users (realm {realm}) in {}",
        users.len(),
        dir.display()
    );
}
