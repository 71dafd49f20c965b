//! Peer IPC crates, behind the compare crate's `peers` feature (on by
//! default; `--no-default-features` leaves them out). Both rows are ping-pong round
//! trips with the same messages and checks as [`super::latency`].
//!
//! * iceoryx2 publish-subscribe: two services (ping, pong) of `[u8; S]`
//!   samples sent with `send_copy`; the receiver polls `receive()` in a spin
//!   loop (as iceoryx2's own ping-pong benchmark does). Each process builds its
//!   own node after the fork; the parent creates the services, the child opens
//!   them, and a handshake in shared memory makes sure both subscribers exist
//!   before the first message.
//! * ipc-channel: two `IpcBytesSender`/`IpcBytesReceiver` channels, created
//!   before the fork (Unix-domain sockets underneath), blocking `recv`.
//! * shmem-ipc: two `sharedring` rings of `u64` (a memfd each, mapped by both
//!   ends before the fork), used through their lock-free ring halves
//!   (`sender_mut().send`, `receiver_mut().recv`) with the receiver spinning:
//!   the crate's fast path, without its eventfd wake-ups. A message of `S`
//!   bytes is `S / 8` items, copied in and out through the ring's raw slices.

use hdrhistogram::Histogram;

use super::latency::Timing;
use super::plumbing::Res;

/// Row names, in table order.
pub const ROWS: [&str; 3] = [
    "iceoryx2 publish-subscribe (polling)",
    "ipc-channel (bytes channel)",
    "shmem-ipc ring (spinning)",
];

/// `Err` with the reason when the peers are not compiled in.
pub fn available() -> Result<(), String> {
    if cfg!(feature = "peers") {
        Ok(())
    } else {
        Err("not built: built with --no-default-features".to_owned())
    }
}

/// Measures one run of row `i` of [`ROWS`].
#[cfg(not(feature = "peers"))]
pub fn run(_i: usize, _size: usize, _t: Timing) -> Res<Histogram<u64>> {
    Err(available().err().unwrap_or_default().into())
}

/// Measures one run of row `i` of [`ROWS`].
#[cfg(feature = "peers")]
pub fn run(i: usize, size: usize, t: Timing) -> Res<Histogram<u64>> {
    let what = format!("{} {size} B", ROWS[i]);
    match (i, size) {
        (0, 8) => built::iceoryx2::<8>(&what, t),
        (0, 64) => built::iceoryx2::<64>(&what, t),
        (0, 1024) => built::iceoryx2::<1024>(&what, t),
        (0, s) => Err(format!("unsupported size {s}").into()),
        (1, _) => built::ipc_channel(&what, size, t),
        _ => built::shmem_ipc(&what, size, t),
    }
}

#[cfg(feature = "peers")]
mod built {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    use hdrhistogram::Histogram;
    use iceoryx2::port::publisher::Publisher;
    use iceoryx2::port::subscriber::Subscriber;
    use iceoryx2::prelude::*;
    use ipc_channel::ipc::{IpcBytesReceiver, IpcBytesSender};

    use super::super::latency::{self, End, Timing};
    use super::super::plumbing::{Line, Res, Shared, ZeroShared, code, spin};

    /// Setup handshake between the two processes.
    #[derive(Debug)]
    #[repr(C)]
    struct Handshake {
        /// The parent created the services and its ports.
        parent: Line,
        /// The child opened the services and created its ports.
        child: Line,
    }

    // SAFETY: atomics only; zero is a valid `AtomicU64`.
    unsafe impl ZeroShared for Handshake {}

    /// Waits (up to 10 s) for `line` to become non-zero.
    fn await_line(line: &Line) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while line.get() == 0 {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_micros(100));
        }
        true
    }

    struct Ice<const S: usize> {
        publisher: Publisher<ipc::Service, [u8; S], ()>,
        subscriber: Subscriber<ipc::Service, [u8; S], ()>,
        // Dropped last: the ports belong to the node.
        _node: Node<ipc::Service>,
    }

    type Ports<const S: usize> = (
        Node<ipc::Service>,
        Publisher<ipc::Service, [u8; S], ()>,
        Subscriber<ipc::Service, [u8; S], ()>,
    );

    /// Builds a node and its two ports: publish on `tx`, subscribe to `rx`.
    fn ports<const S: usize>(tx: &str, rx: &str, create: bool) -> Res<Ports<S>> {
        let node = NodeBuilder::new()
            .signal_handling_mode(SignalHandlingMode::Disabled)
            .create::<ipc::Service>()?;
        let service = |name: &str| -> Res<_> {
            let b = node
                .service_builder(&name.try_into()?)
                .publish_subscribe::<[u8; S]>();
            Ok(if create { b.create()? } else { b.open()? })
        };
        let (tx, rx) = if create {
            let t = service(tx)?;
            let r = service(rx)?;
            (t, r)
        } else {
            let r = service(rx)?;
            let t = service(tx)?;
            (t, r)
        };
        let subscriber = rx.subscriber_builder().create()?;
        let publisher = tx.publisher_builder().create()?;
        Ok((node, publisher, subscriber))
    }

    impl<const S: usize> End for Ice<S> {
        fn send(&mut self, msg: &[u8]) -> Result<(), i32> {
            let item: [u8; S] = msg.try_into().map_err(|_| code::BAD_LEN)?;
            match self.publisher.send_copy(item) {
                Ok(0) | Err(_) => Err(code::SEND_FAILED),
                Ok(_) => Ok(()),
            }
        }

        fn recv(&mut self, buf: &mut [u8]) -> Result<usize, i32> {
            let mut spins = 0;
            loop {
                match self.subscriber.receive() {
                    Ok(Some(sample)) => {
                        buf[..S].copy_from_slice(&*sample);
                        return Ok(S);
                    }
                    Ok(None) => spin(&mut spins),
                    Err(_) => return Err(code::RECV_FAILED),
                }
            }
        }
    }

    static RUN: AtomicU64 = AtomicU64::new(0);

    pub fn iceoryx2<const S: usize>(what: &str, t: Timing) -> Res<Histogram<u64>> {
        set_log_level(LogLevel::Error);
        let n = RUN.fetch_add(1, Ordering::Relaxed);
        let base = format!("multiproc-compare/{}/{n}/{S}", std::process::id());
        let (ping, pong) = (format!("{base}/ping"), format!("{base}/pong"));
        let hs = Shared::<Handshake>::new()?;
        let hr: &Handshake = &hs;
        latency::processes_built_in_child(
            what,
            S,
            t,
            || {
                let (node, publisher, subscriber) = ports::<S>(&ping, &pong, true)?;
                hr.parent.set(1);
                if !await_line(&hr.child) {
                    return Err(format!("{what}: the child did not open the services").into());
                }
                Ok(Ice {
                    publisher,
                    subscriber,
                    _node: node,
                })
            },
            || {
                if !await_line(&hr.parent) {
                    return Err(code::SETUP_FAILED);
                }
                let (node, publisher, subscriber) =
                    ports::<S>(&pong, &ping, false).map_err(|_| code::SETUP_FAILED)?;
                hr.child.set(1);
                Ok(Ice {
                    publisher,
                    subscriber,
                    _node: node,
                })
            },
        )
    }

    struct IpcEnd {
        tx: IpcBytesSender,
        rx: IpcBytesReceiver,
    }

    impl End for IpcEnd {
        fn send(&mut self, msg: &[u8]) -> Result<(), i32> {
            self.tx.send(msg).map_err(|_| code::SEND_FAILED)
        }

        fn recv(&mut self, buf: &mut [u8]) -> Result<usize, i32> {
            let v = self.rx.recv().map_err(|_| code::RECV_FAILED)?;
            buf.get_mut(..v.len())
                .ok_or(code::BAD_LEN)?
                .copy_from_slice(&v);
            Ok(v.len())
        }
    }

    pub fn ipc_channel(what: &str, size: usize, t: Timing) -> Res<Histogram<u64>> {
        let (to_child, from_parent) = ipc_channel::ipc::bytes_channel()?;
        let (to_parent, from_child) = ipc_channel::ipc::bytes_channel()?;
        let parent = IpcEnd {
            tx: to_child,
            rx: from_child,
        };
        let child = IpcEnd {
            tx: to_parent,
            rx: from_parent,
        };
        latency::processes(what, size, t, parent, child)
    }

    /// Items (of 8 bytes) in each shmem-ipc ring; the ring rounds its
    /// mapping up to a page, so it holds at least this many.
    const SHMEM_ITEMS: usize = 2 * super::super::payload::MAX / 8;

    /// One end of two shmem-ipc rings, for messages of `size` bytes.
    struct ShmemEnd {
        tx: shmem_ipc::sharedring::Sender<u64>,
        rx: shmem_ipc::sharedring::Receiver<u64>,
        size: usize,
    }

    type ShmemRing = (
        shmem_ipc::sharedring::Sender<u64>,
        shmem_ipc::sharedring::Receiver<u64>,
    );

    /// Both halves of one ring.
    fn shmem_ring() -> Res<ShmemRing> {
        let tx = shmem_ipc::sharedring::Sender::<u64>::new(SHMEM_ITEMS)?;
        let rx = shmem_ipc::sharedring::Receiver::open(
            SHMEM_ITEMS,
            tx.memfd().as_file().try_clone()?,
            tx.empty_signal().try_clone()?,
            tx.full_signal().try_clone()?,
        )?;
        Ok((tx, rx))
    }

    impl End for ShmemEnd {
        fn send(&mut self, msg: &[u8]) -> Result<(), i32> {
            if msg.len() % 8 != 0 {
                return Err(code::BAD_LEN);
            }
            let items = msg.len() / 8;
            let mut done = 0;
            let mut spins = 0;
            while done < items {
                let mut wrote = 0;
                self.tx
                    .sender_mut()
                    .send(|p, room| {
                        wrote = room.min(items - done);
                        for j in 0..wrote {
                            let at = (done + j) * 8;
                            let mut w = [0u8; 8];
                            w.copy_from_slice(&msg[at..at + 8]);
                            // SAFETY: the ring hands out `room` writable items
                            // from `p`, and `j < wrote <= room`.
                            unsafe { p.add(j).write(u64::from_ne_bytes(w)) };
                        }
                        wrote
                    })
                    .map_err(|_| code::SEND_FAILED)?;
                done += wrote;
                if done < items {
                    spin(&mut spins);
                }
            }
            Ok(())
        }

        fn recv(&mut self, buf: &mut [u8]) -> Result<usize, i32> {
            let size = self.size;
            if size % 8 != 0 || buf.len() < size {
                return Err(code::BAD_LEN);
            }
            let items = size / 8;
            let mut done = 0;
            let mut spins = 0;
            while done < items {
                let mut read = 0;
                self.rx
                    .receiver_mut()
                    .recv(|p, have| {
                        read = have.min(items - done);
                        for j in 0..read {
                            let at = (done + j) * 8;
                            // SAFETY: the ring hands out `have` readable items
                            // from `p`, and `j < read <= have`.
                            let w = unsafe { p.add(j).read() };
                            buf[at..at + 8].copy_from_slice(&w.to_ne_bytes());
                        }
                        read
                    })
                    .map_err(|_| code::RECV_FAILED)?;
                done += read;
                if done < items {
                    spin(&mut spins);
                }
            }
            Ok(size)
        }
    }

    pub fn shmem_ipc(what: &str, size: usize, t: Timing) -> Res<Histogram<u64>> {
        let (to_child, from_parent) = shmem_ring()?;
        let (to_parent, from_child) = shmem_ring()?;
        let parent = ShmemEnd {
            tx: to_child,
            rx: from_child,
            size,
        };
        let child = ShmemEnd {
            tx: to_parent,
            rx: from_parent,
            size,
        };
        latency::processes(what, size, t, parent, child)
    }
}
