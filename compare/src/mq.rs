//! POSIX message queues (`mq_open`, `mq_send`, `mq_receive`): the kernel's
//! own message queue, one system call per message each way.
//!
//! Every queue is created with `O_CREAT | O_EXCL` under a fresh name and
//! unlinked at once, so nothing is left in `/dev/mqueue` even if this program
//! is killed; the descriptor (an fd on Linux) is inherited by the forked
//! workers. Messages are exactly `size` bytes (`mq_msgsize` = size), and a
//! queue holds [`DEPTH`] messages: Linux's default `fs.mqueue.msg_max`, the
//! most an unprivileged process may ask for without tuning (and within the
//! default `RLIMIT_MSGQUEUE` of 800 KiB at 1 KiB messages). Sends and receives
//! block; the queue is multi-producer multi-consumer by itself, so the 2 -> 2
//! rows need no lock.

use std::ffi::CString;
use std::sync::atomic::{AtomicU64, Ordering};

use super::latency::End;
use super::plumbing::{Res, code};
use super::throughput::{Rx, Tx};

/// Messages a queue holds (Linux's default `fs.mqueue.msg_max`).
pub const DEPTH: usize = 10;

/// The latency row's name.
pub const LATENCY_ROW: &str = "POSIX message queue (mq_send/mq_receive)";

/// One open queue; closed on drop (in each process that holds a copy).
#[derive(Debug)]
pub struct Mq {
    fd: libc::mqd_t,
    size: usize,
}

static SEQ: AtomicU64 = AtomicU64::new(0);

impl Mq {
    /// A new, already unlinked queue of [`DEPTH`] messages of `size` bytes.
    pub fn new(size: usize) -> Res<Mq> {
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let name = CString::new(format!("/multiproc-compare-{}-{n}", std::process::id()))?;
        // SAFETY: all-zero is a valid `mq_attr` (plain integers); the fields
        // that matter are set below.
        let mut attr: libc::mq_attr = unsafe { std::mem::zeroed() };
        attr.mq_maxmsg = DEPTH as _;
        attr.mq_msgsize = size as _;
        // SAFETY: `name` is NUL-terminated and outlives the call; with
        // `O_CREAT` the variadic arguments are the mode and a pointer to a
        // valid `mq_attr`, which outlives the call.
        let fd = unsafe {
            libc::mq_open(
                name.as_ptr(),
                libc::O_CREAT | libc::O_EXCL | libc::O_RDWR | libc::O_CLOEXEC,
                0o600 as libc::mode_t,
                &attr as *const libc::mq_attr,
            )
        };
        if fd == -1 {
            return Err(format!(
                "mq_open ({DEPTH} messages of {size} B): {}",
                std::io::Error::last_os_error()
            )
            .into());
        }
        // SAFETY: `name` is NUL-terminated; the open descriptor keeps the
        // queue alive after the name is gone.
        unsafe { libc::mq_unlink(name.as_ptr()) };
        Ok(Mq { fd, size })
    }

    /// Whether a queue of `size`-byte messages can be created here; the
    /// reason if not.
    pub fn available(size: usize) -> Result<(), String> {
        Mq::new(size)
            .map(drop)
            .map_err(|e| format!("unavailable: {e}"))
    }

    fn send(&self, msg: &[u8]) -> Result<(), i32> {
        loop {
            // SAFETY: `msg` is valid for `msg.len()` bytes for the call.
            let r = unsafe { libc::mq_send(self.fd, msg.as_ptr().cast(), msg.len(), 0) };
            if r == 0 {
                return Ok(());
            }
            if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                return Err(code::SEND_FAILED);
            }
        }
    }

    fn recv(&self, buf: &mut [u8]) -> Result<usize, i32> {
        if buf.len() < self.size {
            return Err(code::BAD_LEN);
        }
        loop {
            // SAFETY: `buf` is valid for writes of `buf.len()` bytes, at least
            // the queue's `mq_msgsize` (checked above), for the call.
            let r = unsafe {
                libc::mq_receive(
                    self.fd,
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    std::ptr::null_mut(),
                )
            };
            if let Ok(n) = usize::try_from(r) {
                return Ok(n);
            }
            if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                return Err(code::RECV_FAILED);
            }
        }
    }
}

impl Drop for Mq {
    fn drop(&mut self) {
        // SAFETY: `fd` is this handle's open descriptor, closed only here.
        unsafe { libc::mq_close(self.fd) };
    }
}

/// A ping-pong end: sends on `tx`, receives on `rx`.
#[derive(Debug)]
pub struct MqEnd<'a> {
    /// Where this side sends.
    pub tx: &'a Mq,
    /// Where this side receives.
    pub rx: &'a Mq,
}

impl End for MqEnd<'_> {
    fn send(&mut self, msg: &[u8]) -> Result<(), i32> {
        self.tx.send(msg)
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, i32> {
        self.rx.recv(buf)
    }
}

/// A throughput producer or consumer on one shared queue.
#[derive(Debug)]
pub struct MqPort<'a>(pub &'a Mq);

impl Tx for MqPort<'_> {
    fn send(&mut self, msg: &[u8]) -> Result<(), i32> {
        self.0.send(msg)
    }
}

impl Rx for MqPort<'_> {
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, i32> {
        self.0.recv(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_keep_their_bounds_and_order() {
        let q = Mq::new(8).expect("POSIX message queues work here");
        let mut port = MqPort(&q);
        for i in 0..DEPTH as u64 {
            Tx::send(&mut port, &i.to_le_bytes()).expect("send");
        }
        let mut buf = [0u8; 64];
        for i in 0..DEPTH as u64 {
            let n = Rx::recv(&mut port, &mut buf).expect("receive");
            assert_eq!(&buf[..n], &i.to_le_bytes());
        }
        assert_eq!(Rx::recv(&mut port, &mut [0u8; 4]), Err(code::BAD_LEN));
        assert_eq!(Tx::send(&mut port, &[0u8; 9]), Err(code::SEND_FAILED));
    }
}
