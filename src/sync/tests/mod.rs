//! Loom models of the sync primitives, beside the code (tokio's layout).
//!
//! Run: `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 cargo test --release --lib loom`.
//! The loom futex model never times out a wait, so a lost wake-up is a
//! deadlock loom reports; the robust mutex is loom's mock of its contract.

mod loom_barrier;
mod loom_condition;
mod loom_event;
mod loom_semaphore;

use crate::loom::Deadline;
use crate::park::WaitPolicy;

const FOREVER: Option<Deadline> = None;
const PARK: WaitPolicy = WaitPolicy::Park;
const SPIN: WaitPolicy = WaitPolicy::SpinThenPark;
