//! Peer IPC crates, behind the `peers` feature (off by default: heavy
//! dependencies the library does not need). Both rows are ping-pong round
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

use hdrhistogram::Histogram;

use super::latency::Timing;
use super::plumbing::Res;

/// Row names, in table order.
pub const ROWS: [&str; 2] = [
    "iceoryx2 publish-subscribe (polling)",
    "ipc-channel (bytes channel)",
];

/// `Err` with the reason when the peers are not compiled in.
pub fn available() -> Result<(), String> {
    if cfg!(feature = "peers") {
        Ok(())
    } else {
        Err("not built: run with --features peers".to_owned())
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
        _ => built::ipc_channel(&what, size, t),
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
}
