//! What the benchmark reads from Linux's `/proc` about its own process: CPU
//! time (whole process and per thread) and resident memory.
//!
//! CPU times in `/proc/*/stat` are in clock ticks of `sysconf(_SC_CLK_TCK)`.
//! The crate has no `libc`, so [`clock_ticks_per_second`] asks `getconf
//! CLK_TCK` once and falls back to 100 (the value on every mainstream Linux
//! architecture) when that fails. One tick is 10 ms: over a 10 s window the
//! CPU figures are good to ±0.1 % of a core per reading.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use anyhow::{anyhow, Context};

/// Clock ticks per second for `/proc/*/stat` times.
pub fn clock_ticks_per_second() -> u64 {
    static TCK: OnceLock<u64> = OnceLock::new();
    *TCK.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .filter(|t: &u64| *t > 0)
            .unwrap_or(100)
    })
}

/// `utime + stime` (fields 14 and 15) of a `/proc/.../stat` line, in ticks.
fn parse_stat_cpu(stat: &str) -> anyhow::Result<u64> {
    // The command name (field 2) is in parentheses and may hold spaces: split after the last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow!("no ')' in stat line"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): utime is field 14 → index 11, stime index 12.
    let utime: u64 = fields
        .get(11)
        .ok_or_else(|| anyhow!("stat line too short"))?
        .parse()
        .context("utime")?;
    let stime: u64 = fields
        .get(12)
        .ok_or_else(|| anyhow!("stat line too short"))?
        .parse()
        .context("stime")?;
    Ok(utime + stime)
}

/// User + system CPU time of this whole process (every thread, live or exited), in seconds.
pub fn process_cpu_s() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").context("reading /proc/self/stat")?;
    Ok(parse_stat_cpu(&stat)? as f64 / clock_ticks_per_second() as f64)
}

/// User + system CPU time of another process (every thread), in seconds;
/// None once it is gone.
pub fn pid_cpu_s(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(parse_stat_cpu(&stat).ok()? as f64 / clock_ticks_per_second() as f64)
}

/// Times of one thread.
#[derive(Debug, Clone, Default)]
pub struct ThreadTimes {
    /// The thread's name (`comm`, at most 15 bytes).
    pub name: String,
    /// User + system CPU time, s.
    pub cpu_s: f64,
    /// Time spent runnable but waiting for a CPU (field 2 of `schedstat`),
    /// s: how much another task kept this one off the CPU. 0 when the
    /// kernel does not report it.
    pub wait_s: f64,
    /// Time spent on a CPU (field 1 of `schedstat`, ns precision), s: the
    /// same as `cpu_s` without its 10 ms ticks. 0 when the kernel does not
    /// report it.
    pub run_s: f64,
}

/// Times of this process's live threads, keyed by thread id.
pub fn thread_times() -> anyhow::Result<BTreeMap<u64, ThreadTimes>> {
    let tck = clock_ticks_per_second() as f64;
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir("/proc/self/task").context("reading /proc/self/task")? {
        let entry = entry?;
        let Some(tid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u64>().ok())
        else {
            continue;
        };
        // A thread may exit between the listing and the reads: skip it.
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Ok(ticks) = parse_stat_cpu(&stat) else {
            continue;
        };
        let name = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        let schedstat = std::fs::read_to_string(entry.path().join("schedstat")).unwrap_or_default();
        let field = |i: usize| -> u64 {
            schedstat
                .split_whitespace()
                .nth(i)
                .and_then(|f| f.parse().ok())
                .unwrap_or(0)
        };
        let (run_ns, wait_ns) = (field(0), field(1));
        out.insert(
            tid,
            ThreadTimes {
                name: name.trim().to_string(),
                cpu_s: ticks as f64 / tck,
                wait_s: wait_ns as f64 / 1e9,
                run_s: run_ns as f64 / 1e9,
            },
        );
    }
    Ok(out)
}

/// A `kB` field of `/proc/self/status` (such as `VmRSS` or `VmHWM`), in bytes.
fn status_kb(field: &str) -> anyhow::Result<u64> {
    let status =
        std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| anyhow!("no {field} in /proc/self/status"))
}

/// Resident memory now, bytes.
pub fn rss_bytes() -> anyhow::Result<u64> {
    status_kb("VmRSS")
}

/// Peak resident memory since the process started or since the last
/// successful [`reset_peak_rss`], bytes.
pub fn peak_rss_bytes() -> anyhow::Result<u64> {
    status_kb("VmHWM")
}

/// Bytes the allocator has handed out and not had back (glibc's
/// `mallinfo2`: `uordblks` + `hblkhd`, all arenas): the heap in use, which
/// unlike RSS does not count freed memory the allocator keeps. None on
/// targets other than Linux with glibc.
#[allow(unsafe_code)]
pub fn heap_in_use_bytes() -> Option<u64> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 only reads the allocator's statistics (glibc ≥ 2.33).
        let m = unsafe { libc::mallinfo2() };
        Some((m.uordblks + m.hblkhd) as u64)
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        None
    }
}

/// Asks the allocator to return the free memory it holds to the system
/// (glibc's `malloc_trim(0)`); after it, RSS is close to what is in use.
/// Does nothing on other targets.
#[allow(unsafe_code)]
pub fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointers; it only releases free pages.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Resets the peak (`VmHWM`) to the current RSS by writing `5` to
/// `/proc/self/clear_refs` (Linux ≥ 4.0). Returns whether it worked; when
/// not, the peak covers everything the process did before.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// CPU time the hypervisor gave to others while this machine's CPUs wanted
/// to run (`steal`, field 8 of the `cpu` line of `/proc/stat`), summed over
/// all CPUs, s. 0 on bare metal or when the kernel does not report it.
pub fn steal_s() -> f64 {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("cpu "))?;
            line.split_whitespace().nth(8)?.parse::<u64>().ok()
        })
        .map_or(0.0, |t| t as f64 / clock_ticks_per_second() as f64)
}

/// The 1-minute load average of the machine (0 when unreadable).
pub fn loadavg_1m() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// The CPU model (first `model name` of `/proc/cpuinfo`) and the online CPU count.
pub fn machine() -> (String, usize) {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| {
                l.strip_prefix("model name")?
                    .split_once(':')
                    .map(|(_, v)| v.trim().to_string())
            })
        })
        .unwrap_or_else(|| "unknown".into());
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    (model, cpus)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_line_with_spaces_in_the_name() {
        let line = "1234 (tokio runtime) S 1 2 3 4 5 6 7 8 9 10 250 30 0 0 20 0 5 0 100 0 0";
        assert_eq!(parse_stat_cpu(line).ok(), Some(280));
    }

    #[test]
    fn own_process_readings() {
        assert!(process_cpu_s().is_ok());
        assert!(rss_bytes().is_ok_and(|r| r > 0));
        assert!(peak_rss_bytes().is_ok_and(|r| r > 0));
        assert!(thread_times().is_ok_and(|t| !t.is_empty()));
    }
}
