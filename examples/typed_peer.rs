//! A second, separate program sharing typed objects with another one: the
//! peer half of `tests/two_binaries.rs`, which creates the objects and runs
//! this binary. It defines its own `Stat` (the same `#[repr(C)]` layout as the
//! test's, under another type name), opens the named `Queue`, `SharedDict`
//! and `Value` the other program created, reads what it put there, writes its
//! answers back, and shows that a struct of another size is refused.
//!
//! ```text
//! cargo run --example typed_peer -- QUEUE_NAME DICT_NAME VALUE_NAME
//! ```
//!
//! It expects the queue to hold `Stat { hits: 1, last: 10 }` and
//! `Stat { hits: 2, last: 20 }`, the dict `"alpha" -> Stat { hits: 3, last: 30 }`
//! and the value `Stat { hits: 4, last: 40 }`; it answers with one queue item
//! `Stat { hits: 3, last: 30 }` (the sums), the dict entry
//! `"beta" -> Stat { hits: 7, last: 70 }` and the value's `hits` raised by 100.
//! It prints one `refused:` line per object opened with the wrong size, and
//! exits 0 only if every check passed.

use std::error::Error;

use multiproc::{FixedStr, Pod, Queue, SharedDict, Value, Zeroable};

/// This program's statistics record. Same fields, order and types as the
/// creator's, so the same size (16) and alignment (8): the same identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
#[bytemuck(crate = "multiproc::bytemuck")]
#[repr(C)]
struct Stat {
    hits: u64,
    last: u64,
}

/// A record with one more field (24 bytes): must be refused.
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
#[bytemuck(crate = "multiproc::bytemuck")]
#[repr(C)]
struct WideStat {
    hits: u64,
    last: u64,
    extra: u64,
}

type Key = FixedStr<16>;

fn check(ok: bool, what: &str) -> Result<(), Box<dyn Error>> {
    if ok {
        Ok(())
    } else {
        Err(format!("check failed: {what}").into())
    }
}

/// Prints why `r` failed, checking that the error names both sizes.
fn refused<T>(what: &str, r: Result<T, multiproc::Error>) -> Result<(), Box<dyn Error>> {
    match r {
        Ok(_) => Err(format!("{what}: opened with a 24-byte struct").into()),
        Err(e) => {
            let msg = e.to_string();
            println!("refused: {what}: {msg}");
            check(
                matches!(e, multiproc::Error::ElementMismatch { .. })
                    && msg.contains("size 24")
                    && msg.contains("size 16"),
                "the error names both sizes",
            )
        }
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [queue, dict, value] = args.as_slice() else {
        return Err("usage: typed_peer QUEUE_NAME DICT_NAME VALUE_NAME".into());
    };

    let q = Queue::<Stat>::open(queue)?;
    let d = SharedDict::<Key, Stat>::open(dict)?;
    let v = Value::<Stat>::open(value)?;
    println!("opened: {}", q.region().identity());
    println!("opened: {}", d.region().identity());
    println!("opened: {}", v.region().identity());

    let a = q.try_get().map_err(|e| format!("queue: {e}"))?;
    let b = q.try_get().map_err(|e| format!("queue: {e}"))?;
    check(
        a == Stat { hits: 1, last: 10 } && b == Stat { hits: 2, last: 20 },
        "queue items",
    )?;
    let alpha = d.get(&Key::try_new("alpha")?)?;
    check(alpha == Some(Stat { hits: 3, last: 30 }), "dict entry")?;
    let before = v.load()?;
    check(before == Stat { hits: 4, last: 40 }, "value")?;
    println!("read: queue {a:?}, {b:?}; dict alpha = {alpha:?}; value {before:?}");

    q.try_put(Stat {
        hits: a.hits + b.hits,
        last: a.last + b.last,
    })
    .map_err(|e| format!("queue put: {e}"))?;
    d.insert(Key::try_new("beta")?, Stat { hits: 7, last: 70 })
        .map_err(|e| format!("dict insert: {e}"))?;
    v.with_lock(|s| s.hits += 100)?;
    println!("wrote: queue item, dict beta, value hits + 100");

    refused("Queue", Queue::<WideStat>::open(queue))?;
    refused("SharedDict", SharedDict::<Key, WideStat>::open(dict))?;
    refused("Value", Value::<WideStat>::open(value))?;
    println!("peer: all checks passed");
    Ok(())
}
