//! `--load N`: CPU-bound processes that run during every row, so the figures
//! show what a busy shared host does to each transport.
//!
//! Each hog is a forked process spinning on plain arithmetic at normal
//! priority (no `nice`, no affinity), like `while :; do :; done`. They are
//! killed and reaped when [`Hogs`] drops (also while a panic unwinds), and
//! each one has `PR_SET_PDEATHSIG` = `SIGKILL` (set by [`spawn`]), so a
//! Ctrl-C, an abort or a kill of this program takes them with it.

use multiproc::process::Child;

use super::plumbing::{Res, spawn};

/// Running hogs; dropping this kills them.
#[derive(Debug, Default)]
pub struct Hogs {
    children: Vec<Child>,
}

impl Hogs {
    /// Starts `n` hogs (none for 0).
    pub fn start(n: usize) -> Res<Hogs> {
        let mut hogs = Hogs::default();
        for _ in 0..n {
            // The child never returns: it spins until killed.
            let child = spawn(|| {
                let mut x = 0u64;
                loop {
                    x = std::hint::black_box(
                        x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1),
                    );
                }
            })?;
            hogs.children.push(child);
        }
        Ok(hogs)
    }

    /// How many hogs run.
    pub fn count(&self) -> usize {
        self.children.len()
    }
}

impl Drop for Hogs {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
        }
        for child in self.children.drain(..) {
            let _ = child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether process `pid` exists (a zombie counts: it is not reaped).
    fn exists(pid: u32) -> bool {
        let pid = libc::pid_t::try_from(pid).expect("pid fits");
        // SAFETY: signal 0 only checks that the process exists.
        unsafe { libc::kill(pid, 0) == 0 }
    }

    #[test]
    fn hogs_run_until_dropped_and_are_reaped() {
        let hogs = Hogs::start(2).expect("fork hogs");
        assert_eq!(hogs.count(), 2);
        let pids: Vec<u32> = hogs.children.iter().map(Child::pid).collect();
        for &pid in &pids {
            assert!(exists(pid), "hog {pid} is running");
        }
        drop(hogs);
        for &pid in &pids {
            assert!(!exists(pid), "hog {pid} was killed and reaped");
        }
        assert_eq!(Hogs::start(0).expect("no hogs").count(), 0);
    }
}
