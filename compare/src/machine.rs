//! What the numbers were measured on.

use std::ffi::CStr;
use std::time::{SystemTime, UNIX_EPOCH};

/// The machine, as the table header and the JSON describe it.
#[derive(Debug, Clone)]
pub struct Machine {
    /// Logical CPUs online.
    pub cores: usize,
    /// `/proc/cpuinfo`'s model name.
    pub cpu: String,
    /// Whether the CPU reports running under a hypervisor.
    pub virtualized: bool,
    /// `uname -r`.
    pub kernel: String,
    /// glibc's version.
    pub glibc: String,
    /// `/proc/loadavg`'s three load averages when the run started (before
    /// any `--load` hogs).
    pub load: String,
    /// `/proc/loadavg`'s three load averages when the run ended (empty until
    /// then).
    pub load_end: String,
    /// CPU-bound hogs that ran during every row (`--load`).
    pub hogs: usize,
    /// The start of the run, UTC, `YYYY-MM-DD HH:MM:SS`.
    pub date: String,
    /// Whether this is an optimized build.
    pub release: bool,
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Looks at the machine.
pub fn probe() -> Machine {
    let cpuinfo = read("/proc/cpuinfo");
    let cpu = cpuinfo
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == "model name").then(|| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let virtualized = cpuinfo
        .lines()
        .any(|l| l.starts_with("flags") && l.split_whitespace().any(|f| f == "hypervisor"));
    let kernel = read("/proc/sys/kernel/osrelease").trim().to_owned();
    // SAFETY: gnu_get_libc_version returns a pointer to a static NUL-terminated
    // string owned by glibc.
    let glibc = unsafe { CStr::from_ptr(libc::gnu_get_libc_version()) }
        .to_string_lossy()
        .into_owned();
    let load = loadavg();
    Machine {
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu,
        virtualized,
        kernel,
        glibc,
        load,
        load_end: String::new(),
        hogs: 0,
        date: utc_now(),
        release: !cfg!(debug_assertions),
    }
}

/// `/proc/loadavg`'s three load averages, space-separated.
pub fn loadavg() -> String {
    read("/proc/loadavg")
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The current time, UTC, as `YYYY-MM-DD HH:MM:SS`.
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
