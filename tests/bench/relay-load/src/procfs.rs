//! CPU time of process trees, busy time of a core and the kernel's UDP
//! drop counter, from /proc.

/// Clock ticks per second of /proc/*/stat and /proc/stat.
pub fn clk_tck() -> u64 {
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// PIDs given plus all their descendants (Kamailio forks its workers).
pub fn process_tree(roots: &[u32]) -> Vec<u32> {
    let mut parent: Vec<(u32, u32)> = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            if let Some(rest) = stat.rsplit_once(')').map(|x| x.1) {
                if let Some(ppid) = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok()) {
                    parent.push((pid, ppid));
                }
            }
        }
    }
    let mut out: Vec<u32> = roots.to_vec();
    let mut i = 0;
    while i < out.len() {
        let p = out[i];
        for &(c, pp) in &parent {
            if pp == p && !out.contains(&c) {
                out.push(c);
            }
        }
        i += 1;
    }
    out
}

/// utime + stime of one process (all its threads, living and exited), in
/// ticks.
pub fn process_ticks(pid: u32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    let Some(rest) = stat.rsplit_once(')').map(|x| x.1) else {
        return 0;
    };
    // After "pid (comm)": state is field 3; utime 14 and stime 15.
    let f: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    get(11) + get(12)
}

/// utime + stime summed over the trees of `roots`, in ticks.
pub fn tree_ticks(roots: &[u32]) -> u64 {
    process_tree(roots).into_iter().map(process_ticks).sum()
}

/// Busy ticks of core `cpu` (everything but idle and iowait).
pub fn core_busy_ticks(cpu: usize) -> u64 {
    let Ok(s) = std::fs::read_to_string("/proc/stat") else {
        return 0;
    };
    let name = format!("cpu{cpu}");
    for line in s.lines() {
        let mut it = line.split_whitespace();
        if it.next() == Some(name.as_str()) {
            let v: Vec<u64> = it.map(|x| x.parse().unwrap_or(0)).collect();
            // user nice system idle iowait irq softirq steal ...
            return v.iter().take(8).sum::<u64>()
                - v.get(3).copied().unwrap_or(0)
                - v.get(4).copied().unwrap_or(0);
        }
    }
    0
}

/// UDP datagrams dropped for full receive buffers in this network
/// namespace (/proc/net/snmp Udp RcvbufErrors).
pub fn udp_rcvbuf_errors() -> u64 {
    let Ok(s) = std::fs::read_to_string("/proc/net/snmp") else {
        return 0;
    };
    let mut lines = s.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(head), Some(vals)) = (lines.next(), lines.next()) else {
        return 0;
    };
    head.split_whitespace()
        .zip(vals.split_whitespace())
        .find(|(h, _)| *h == "RcvbufErrors")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}
