//! `JoinableQueue<T>`: a [`Queue`] that counts unfinished tasks.

use std::fmt;
use std::ops::Deref;
use std::time::Duration;

use crate::identity::SharedType;

use super::ends::Role;
use super::{Queue, Receiver, Sender, TaskDoneError};
use crate::loom::Deadline;
use crate::{Error, RegionOptions};

/// A [`Queue`] with Python's `JoinableQueue` accounting: every put adds an
/// unfinished task, [`JoinableQueue::task_done`] removes one, and
/// [`JoinableQueue::join`] blocks until none is left. The counter lives in shared
/// memory, so producers, consumers and joiners may be in different processes.
///
/// All of [`Queue`]'s methods are available through `Deref`.
///
/// If a process dies while copying a message in or out, that message's task is
/// marked done by the survivor that recovers the slot. A task taken by a
/// consumer that then dies before `task_done` can never be done: use
/// [`JoinableQueue::join_timeout`] when consumers may crash.
///
/// ```
/// use multiproc::JoinableQueue;
///
/// let q: JoinableQueue<u32> = JoinableQueue::anonymous(8)?;
/// q.put(7).unwrap();
/// assert_eq!(q.unfinished(), 1);
/// assert_eq!(q.get(), Ok(7));
/// q.task_done().unwrap();
/// q.join();
/// assert!(q.task_done().is_err()); // once too often
/// # Ok::<(), multiproc::Error>(())
/// ```
pub struct JoinableQueue<T> {
    queue: Queue<T>,
}

impl<T: SharedType> Clone for JoinableQueue<T> {
    fn clone(&self) -> Self {
        JoinableQueue {
            queue: self.queue.clone(),
        }
    }
}

impl<T: SharedType> fmt::Debug for JoinableQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinableQueue")
            .field("queue", &self.queue)
            .finish()
    }
}

impl<T> Deref for JoinableQueue<T> {
    type Target = Queue<T>;

    fn deref(&self) -> &Queue<T> {
        &self.queue
    }
}

impl<T: SharedType> JoinableQueue<T> {
    /// Wraps a joinable queue placed by the manager.
    pub(crate) fn from_queue(queue: Queue<T>) -> JoinableQueue<T> {
        JoinableQueue { queue }
    }

    /// A joinable queue of `capacity` slots in an anonymous shared mapping.
    pub fn anonymous(capacity: usize) -> Result<JoinableQueue<T>, Error> {
        Ok(JoinableQueue {
            queue: Queue::new_kind(None, capacity, RegionOptions::default(), true)?,
        })
    }

    /// [`JoinableQueue::anonymous`] with explicit region options (more
    /// [participant slots](RegionOptions::participants) for more processes, say).
    pub fn anonymous_with(capacity: usize, opts: RegionOptions) -> Result<JoinableQueue<T>, Error> {
        Ok(JoinableQueue {
            queue: Queue::new_kind(None, capacity, opts, true)?,
        })
    }

    /// Creates a joinable queue under `name`.
    pub fn create(name: &str, capacity: usize) -> Result<JoinableQueue<T>, Error> {
        JoinableQueue::create_with(name, capacity, RegionOptions::default())
    }

    /// [`JoinableQueue::create`] with explicit region options.
    pub fn create_with(
        name: &str,
        capacity: usize,
        opts: RegionOptions,
    ) -> Result<JoinableQueue<T>, Error> {
        Ok(JoinableQueue {
            queue: Queue::new_kind(Some(name), capacity, opts, true)?,
        })
    }

    /// Opens the joinable queue `name`.
    ///
    /// Refuses a region file owned by another user or writable by group or
    /// others, as [`Queue::open`] does.
    pub fn open(name: &str) -> Result<JoinableQueue<T>, Error> {
        JoinableQueue::open_with(name, RegionOptions::default())
    }

    /// [`JoinableQueue::open`] with the trust options of `opts`.
    pub fn open_with(name: &str, opts: RegionOptions) -> Result<JoinableQueue<T>, Error> {
        Ok(JoinableQueue {
            queue: Queue::open_kind(name, true, opts)?,
        })
    }

    /// Opens the joinable queue `name`, or creates it with `capacity` slots;
    /// race-free, with the checks of [`Queue::open_or_create`] (and a plain
    /// `Queue` under the name is [`Error::TypeMismatch`]).
    pub fn open_or_create(name: &str, capacity: usize) -> Result<JoinableQueue<T>, Error> {
        JoinableQueue::open_or_create_with(name, capacity, RegionOptions::default())
    }

    /// [`JoinableQueue::open_or_create`] with region options.
    pub fn open_or_create_with(
        name: &str,
        capacity: usize,
        opts: RegionOptions,
    ) -> Result<JoinableQueue<T>, Error> {
        Ok(JoinableQueue {
            queue: Queue::open_or_create_kind(name, capacity, true, opts)?,
        })
    }

    /// Marks one task done. Refused with [`TaskDoneError::TooManyCalls`] (and
    /// nothing changes) when no task is unfinished.
    pub fn task_done(&self) -> Result<(), TaskDoneError> {
        if self.queue.core().task_done() {
            Ok(())
        } else {
            Err(TaskDoneError::TooManyCalls)
        }
    }

    /// Tasks put and not yet done.
    pub fn unfinished(&self) -> u64 {
        self.queue.core().unfinished()
    }

    /// Blocks until every task put so far is done.
    pub fn join(&self) {
        self.queue.core().join(None);
    }

    /// Blocks until every task is done or `timeout` passes; returns whether all
    /// are done.
    pub fn join_timeout(&self, timeout: Duration) -> bool {
        self.queue.core().join(Some(Deadline::after(timeout)))
    }

    /// This handle with another [`WaitPolicy`](crate::WaitPolicy) for its
    /// blocking calls, `join` included.
    pub fn with_wait_policy(self, policy: crate::WaitPolicy) -> JoinableQueue<T> {
        JoinableQueue {
            queue: self.queue.with_wait_policy(policy),
        }
    }

    fn with_role(&self, role: Role) -> JoinableQueue<T> {
        JoinableQueue {
            queue: self.queue.with_role(role),
        }
    }

    /// A new sending handle (see [`Queue::sender`]); it can also `join`.
    pub fn sender(&self) -> Sender<JoinableQueue<T>> {
        Sender::wrap(self.with_role(Role::Send))
    }

    /// A new receiving handle (see [`Queue::receiver`]); it can also
    /// `task_done` and `join`.
    pub fn receiver(&self) -> Receiver<JoinableQueue<T>> {
        Receiver::wrap(self.with_role(Role::Recv))
    }

    /// A sender and a receiver, consuming this handle.
    pub fn split(self) -> (Sender<JoinableQueue<T>>, Receiver<JoinableQueue<T>>) {
        (self.sender(), self.receiver())
    }
}
