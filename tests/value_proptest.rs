//! Model-based property tests for `Counter`, `Value` and `Array`, single process,
//! plus their bad-input cases.
//!
//! Random operation sequences drive the shared object next to a plain Rust model
//! (an `i64`, a `Vec<T>`, a `T`) and every result is compared with the model
//! *exactly*: each returned previous value, each `compare_exchange` outcome, each
//! `ValueError::OutOfBounds { index, len }` (indices run up to `len + 2`, and an
//! out-of-bounds call must change nothing), and the whole contents after every
//! step. Operations alternate between two handles: a clone, or for named objects
//! a second mapping made by `open`, so what one handle writes the other reads.
//!
//! Element shapes: `i64` (Counter), `i8`/`i32`/`u64` (integer arrays, wrapping
//! arithmetic, lock-free atomics mixed with locked writes), `[u8; 5]` (an odd
//! size: a partial, zero-padded word) and `[u16; 3]` (a 6-byte `Value`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is the failure report"
)]

mod common;

use std::fmt::Debug;

use common::{Unlink, unique_name};
use multiproc::{Array, AtomicElement, Counter, Error, SharedDict, Value, ValueError};
use proptest::prelude::*;
use proptest::test_runner::Config;

/// No failure persistence, so a failing run writes no files into the source tree.
fn config(cases: u32) -> Config {
    Config {
        failure_persistence: None,
        ..Config::with_cases(cases)
    }
}

// ---------------------------------------------------------------------------
// Counter
// ---------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum CounterOp {
    FetchAdd(i64),
    FetchSub(i64),
    Swap(i64),
    Store(i64),
    /// `compare_exchange(current, new)`; `hit` uses the model's value as `current`.
    CompareExchange {
        hit: bool,
        current: i64,
        new: i64,
    },
    Load,
}

/// Mostly small numbers, often the extremes, so wrapping happens.
fn int64() -> impl Strategy<Value = i64> {
    prop_oneof![
        4 => -5i64..=5,
        2 => any::<i64>(),
        1 => Just(i64::MAX),
        1 => Just(i64::MIN),
    ]
}

fn counter_op() -> impl Strategy<Value = CounterOp> {
    prop_oneof![
        4 => int64().prop_map(CounterOp::FetchAdd),
        4 => int64().prop_map(CounterOp::FetchSub),
        2 => int64().prop_map(CounterOp::Swap),
        2 => int64().prop_map(CounterOp::Store),
        4 => (any::<bool>(), int64(), int64())
            .prop_map(|(hit, current, new)| CounterOp::CompareExchange { hit, current, new }),
        2 => Just(CounterOp::Load),
    ]
}

fn run_counter(
    a: &Counter,
    b: &Counter,
    initial: i64,
    ops: &[(bool, CounterOp)],
) -> Result<(), TestCaseError> {
    let mut m = initial;
    prop_assert_eq!(a.load(), m);
    for (step, (other, op)) in ops.iter().enumerate() {
        let c = if *other { b } else { a };
        match op.clone() {
            CounterOp::FetchAdd(d) => {
                prop_assert_eq!(c.fetch_add(d), m, "step {}: {:?}", step, op);
                m = m.wrapping_add(d);
            }
            CounterOp::FetchSub(d) => {
                prop_assert_eq!(c.fetch_sub(d), m, "step {}: {:?}", step, op);
                m = m.wrapping_sub(d);
            }
            CounterOp::Swap(v) => {
                prop_assert_eq!(c.swap(v), m, "step {}: {:?}", step, op);
                m = v;
            }
            CounterOp::Store(v) => {
                c.store(v);
                m = v;
            }
            CounterOp::CompareExchange { hit, current, new } => {
                let current = if hit { m } else { current };
                let want = if current == m {
                    m = new;
                    Ok(current)
                } else {
                    Err(m)
                };
                prop_assert_eq!(
                    c.compare_exchange(current, new),
                    want,
                    "step {}: {:?}",
                    step,
                    op
                );
            }
            CounterOp::Load => {}
        }
        prop_assert_eq!(a.load(), m, "step {}: {:?}", step, op);
        prop_assert_eq!(b.load(), m, "step {}: {:?}", step, op);
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(96))]

    #[test]
    fn anonymous_counter_matches_i64(
        initial in int64(),
        ops in prop::collection::vec((any::<bool>(), counter_op()), 1..=200),
    ) {
        let a = Counter::anonymous(initial).unwrap();
        let b = a.clone();
        run_counter(&a, &b, initial, &ops)?;
    }
}

proptest! {
    #![proptest_config(config(16))]

    #[test]
    fn named_counter_matches_i64_through_two_mappings(
        initial in int64(),
        ops in prop::collection::vec((any::<bool>(), counter_op()), 1..=200),
    ) {
        let name = unique_name("counter");
        let _u = Unlink(name.clone());
        let a = Counter::create(&name, initial).unwrap();
        let b = Counter::open(&name).unwrap();
        run_counter(&a, &b, initial, &ops)?;
    }
}

// ---------------------------------------------------------------------------
// Array of integers
// ---------------------------------------------------------------------------

/// Integer elements with the model's wrapping arithmetic.
trait Int: AtomicElement + Arbitrary + PartialEq + Debug {
    fn wadd(self, d: Self) -> Self;
    fn wsub(self, d: Self) -> Self;
}

macro_rules! int {
    ($($t:ty),*) => {$(
        impl Int for $t {
            fn wadd(self, d: Self) -> Self {
                self.wrapping_add(d)
            }
            fn wsub(self, d: Self) -> Self {
                self.wrapping_sub(d)
            }
        }
    )*};
}

int!(i8, i32, u64);

#[derive(Clone, Debug)]
enum IntOp<T> {
    Get(usize),
    Set(usize, T),
    FetchAdd(usize, T),
    FetchSub(usize, T),
    Swap(usize, T),
    /// `compare_exchange(i, current, new)`; `hit` uses the model's element.
    CompareExchange(usize, bool, T, T),
    /// `with_lock` writing `v` at `i % len` for each `(i, v)`, in order.
    WithLock(Vec<(usize, T)>),
    ToVec,
}

fn int_op<T: Int + Clone + 'static>(len: usize) -> impl Strategy<Value = IntOp<T>> {
    // Up to two past the end: out-of-bounds indices are a regular case.
    let i = 0..len + 2;
    let v = any::<T>;
    prop_oneof![
        3 => i.clone().prop_map(IntOp::Get),
        3 => (i.clone(), v()).prop_map(|(i, x)| IntOp::Set(i, x)),
        3 => (i.clone(), v()).prop_map(|(i, x)| IntOp::FetchAdd(i, x)),
        2 => (i.clone(), v()).prop_map(|(i, x)| IntOp::FetchSub(i, x)),
        2 => (i.clone(), v()).prop_map(|(i, x)| IntOp::Swap(i, x)),
        3 => (i.clone(), any::<bool>(), v(), v())
            .prop_map(|(i, hit, c, n)| IntOp::CompareExchange(i, hit, c, n)),
        2 => prop::collection::vec((0..len, v()), 0..=4).prop_map(IntOp::WithLock),
        1 => Just(IntOp::ToVec),
    ]
}

/// Length, whether to start from random contents (`from_slice`) or zeros, the
/// initial contents, and the operations (each on handle `a` or `b`).
#[allow(clippy::type_complexity, reason = "a strategy's value tuple")]
fn int_case<T: Int + Clone + 'static>()
-> impl Strategy<Value = (usize, bool, Vec<T>, Vec<(bool, IntOp<T>)>)> {
    (1usize..=9, any::<bool>()).prop_flat_map(|(len, from_slice)| {
        (
            Just(len),
            Just(from_slice),
            prop::collection::vec(any::<T>(), len),
            prop::collection::vec((any::<bool>(), int_op::<T>(len)), 1..=150),
        )
    })
}

fn oob<T>(index: usize, len: usize) -> Result<T, ValueError> {
    Err(ValueError::OutOfBounds { index, len })
}

fn run_int_array<T: Int + Clone>(
    a: &Array<T>,
    b: &Array<T>,
    mut m: Vec<T>,
    ops: &[(bool, IntOp<T>)],
) -> Result<(), TestCaseError> {
    let len = m.len();
    prop_assert_eq!(a.len(), len);
    prop_assert!(!a.is_empty());
    prop_assert_eq!(a.to_vec(), Ok(m.clone()));
    for (step, (other, op)) in ops.iter().enumerate() {
        let arr = if *other { b } else { a };
        match op.clone() {
            IntOp::Get(i) => {
                let want = m.get(i).copied().ok_or(()).or_else(|()| oob(i, len));
                prop_assert_eq!(arr.get(i), want, "step {}: {:?}", step, op);
            }
            IntOp::Set(i, v) => {
                let want = match m.get_mut(i) {
                    Some(e) => Ok(std::mem::replace(e, v)),
                    None => oob(i, len),
                };
                prop_assert_eq!(arr.set(i, v), want, "step {}: {:?}", step, op);
            }
            IntOp::FetchAdd(i, d) | IntOp::FetchSub(i, d) => {
                let add = matches!(op, IntOp::FetchAdd(..));
                let want = match m.get_mut(i) {
                    Some(e) => {
                        let old = *e;
                        *e = if add { old.wadd(d) } else { old.wsub(d) };
                        Ok(old)
                    }
                    None => oob(i, len),
                };
                let got = if add {
                    arr.fetch_add(i, d)
                } else {
                    arr.fetch_sub(i, d)
                };
                prop_assert_eq!(got, want, "step {}: {:?}", step, op);
            }
            IntOp::Swap(i, v) => {
                let want = match m.get_mut(i) {
                    Some(e) => Ok(std::mem::replace(e, v)),
                    None => oob(i, len),
                };
                prop_assert_eq!(arr.swap(i, v), want, "step {}: {:?}", step, op);
            }
            IntOp::CompareExchange(i, hit, current, new) => {
                let current = match (hit, m.get(i)) {
                    (true, Some(&e)) => e,
                    _ => current,
                };
                let want = match m.get_mut(i) {
                    Some(e) if *e == current => {
                        *e = new;
                        Ok(Ok(current))
                    }
                    Some(e) => Ok(Err(*e)),
                    None => oob(i, len),
                };
                prop_assert_eq!(
                    arr.compare_exchange(i, current, new),
                    want,
                    "step {}: {:?}",
                    step,
                    op
                );
            }
            IntOp::WithLock(edits) => {
                let before = m.clone();
                for &(i, v) in &edits {
                    m[i] = v;
                }
                let got = arr.with_lock(|s| {
                    let seen = s.to_vec();
                    for &(i, v) in &edits {
                        s[i] = v;
                    }
                    (seen, s.len())
                });
                prop_assert_eq!(got, Ok((before, len)), "step {}: {:?}", step, op);
            }
            IntOp::ToVec => {}
        }
        prop_assert_eq!(a.to_vec(), Ok(m.clone()), "step {}: {:?}", step, op);
        prop_assert_eq!(b.to_vec(), Ok(m.clone()), "step {}: {:?}", step, op);
    }
    prop_assert_eq!(a.recoveries(), 0);
    Ok(())
}

fn check_int_array<T: Int + Clone>(
    len: usize,
    from_slice: bool,
    init: Vec<T>,
    ops: &[(bool, IntOp<T>)],
) -> Result<(), TestCaseError> {
    let (a, m) = if from_slice {
        (Array::from_slice(&init).unwrap(), init)
    } else {
        (Array::anonymous(len).unwrap(), vec![T::zeroed(); len])
    };
    let b = a.clone();
    run_int_array(&a, &b, m, ops)
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn i32_array_matches_vec((len, from_slice, init, ops) in int_case::<i32>()) {
        check_int_array(len, from_slice, init, &ops)?;
    }

    #[test]
    fn i8_array_matches_vec((len, from_slice, init, ops) in int_case::<i8>()) {
        check_int_array(len, from_slice, init, &ops)?;
    }

    #[test]
    fn u64_array_matches_vec((len, from_slice, init, ops) in int_case::<u64>()) {
        check_int_array(len, from_slice, init, &ops)?;
    }
}

proptest! {
    #![proptest_config(config(16))]

    #[test]
    fn named_i32_array_matches_vec_through_two_mappings(
        (len, _from_slice, _init, ops) in int_case::<i32>(),
    ) {
        let name = unique_name("arr-i32");
        let _u = Unlink(name.clone());
        let a = Array::<i32>::create(&name, len).unwrap();
        let b = Array::<i32>::open(&name).unwrap();
        run_int_array(&a, &b, vec![0; len], &ops)?;
    }
}

// ---------------------------------------------------------------------------
// Array of an odd-sized element
// ---------------------------------------------------------------------------

type Odd = [u8; 5];

#[derive(Clone, Debug)]
enum OddOp {
    Get(usize),
    Set(usize, Odd),
    /// `with_lock` writing byte `b` of element `i % len` for each `(i, b, x)`.
    WithLock(Vec<(usize, usize, u8)>),
    ToVec,
}

fn odd_op(len: usize) -> impl Strategy<Value = OddOp> {
    let i = 0..len + 2;
    prop_oneof![
        3 => i.clone().prop_map(OddOp::Get),
        3 => (i, any::<Odd>()).prop_map(|(i, v)| OddOp::Set(i, v)),
        3 => prop::collection::vec((0..len, 0usize..5, any::<u8>()), 0..=6)
            .prop_map(OddOp::WithLock),
        1 => Just(OddOp::ToVec),
    ]
}

#[allow(clippy::type_complexity, reason = "a strategy's value tuple")]
fn odd_case() -> impl Strategy<Value = (usize, bool, Vec<Odd>, Vec<(bool, OddOp)>)> {
    (1usize..=9, any::<bool>()).prop_flat_map(|(len, from_slice)| {
        (
            Just(len),
            Just(from_slice),
            prop::collection::vec(any::<Odd>(), len),
            prop::collection::vec((any::<bool>(), odd_op(len)), 1..=150),
        )
    })
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn odd_sized_array_matches_vec((len, from_slice, init, ops) in odd_case()) {
        let (a, mut m) = if from_slice {
            (Array::from_slice(&init).unwrap(), init)
        } else {
            (Array::<Odd>::anonymous(len).unwrap(), vec![[0; 5]; len])
        };
        let b = a.clone();
        prop_assert_eq!(a.len(), len);
        prop_assert_eq!(a.to_vec(), Ok(m.clone()));
        for (step, (other, op)) in ops.iter().enumerate() {
            let arr = if *other { &b } else { &a };
            match op.clone() {
                OddOp::Get(i) => {
                    let want = m.get(i).copied().ok_or(()).or_else(|()| oob(i, len));
                    prop_assert_eq!(arr.get(i), want, "step {}: {:?}", step, op);
                }
                OddOp::Set(i, v) => {
                    let want = match m.get_mut(i) {
                        Some(e) => Ok(std::mem::replace(e, v)),
                        None => oob(i, len),
                    };
                    prop_assert_eq!(arr.set(i, v), want, "step {}: {:?}", step, op);
                }
                OddOp::WithLock(edits) => {
                    let before = m.clone();
                    for &(i, k, x) in &edits {
                        m[i][k] = x;
                    }
                    let got = arr.with_lock(|s| {
                        let seen = s.to_vec();
                        for &(i, k, x) in &edits {
                            s[i][k] = x;
                        }
                        seen
                    });
                    prop_assert_eq!(got, Ok(before), "step {}: {:?}", step, op);
                }
                OddOp::ToVec => {}
            }
            prop_assert_eq!(a.to_vec(), Ok(m.clone()), "step {}: {:?}", step, op);
            prop_assert_eq!(b.to_vec(), Ok(m.clone()), "step {}: {:?}", step, op);
        }
    }
}

// ---------------------------------------------------------------------------
// Value<[u16; 3]>
// ---------------------------------------------------------------------------

type Triple = [u16; 3];

#[derive(Clone, Debug)]
enum ValueOp {
    Load,
    Store(Triple),
    /// `with_lock` writing `x` at index `k` for each `(k, x)`, returning what it saw.
    WithLock(Vec<(usize, u16)>),
}

fn value_op() -> impl Strategy<Value = ValueOp> {
    prop_oneof![
        2 => Just(ValueOp::Load),
        3 => any::<Triple>().prop_map(ValueOp::Store),
        3 => prop::collection::vec((0usize..3, any::<u16>()), 0..=4).prop_map(ValueOp::WithLock),
    ]
}

fn run_value(
    a: &Value<Triple>,
    b: &Value<Triple>,
    mut m: Triple,
    ops: &[(bool, ValueOp)],
) -> Result<(), TestCaseError> {
    prop_assert_eq!(a.load(), Ok(m));
    for (step, (other, op)) in ops.iter().enumerate() {
        let v = if *other { b } else { a };
        match op.clone() {
            ValueOp::Load => prop_assert_eq!(v.load(), Ok(m), "step {}", step),
            ValueOp::Store(x) => {
                prop_assert_eq!(v.store(x), Ok(m), "step {}: {:?}", step, op);
                m = x;
            }
            ValueOp::WithLock(edits) => {
                let before = m;
                for &(k, x) in &edits {
                    m[k] = x;
                }
                let got = v.with_lock(|t| {
                    let seen = *t;
                    for &(k, x) in &edits {
                        t[k] = x;
                    }
                    seen
                });
                prop_assert_eq!(got, Ok(before), "step {}: {:?}", step, op);
            }
        }
        prop_assert_eq!(a.load(), Ok(m), "step {}: {:?}", step, op);
        prop_assert_eq!(b.load(), Ok(m), "step {}: {:?}", step, op);
    }
    prop_assert_eq!(a.recoveries(), 0);
    Ok(())
}

proptest! {
    #![proptest_config(config(96))]

    #[test]
    fn value_matches_model(
        initial in any::<Triple>(),
        ops in prop::collection::vec((any::<bool>(), value_op()), 1..=150),
    ) {
        let a = Value::anonymous(initial).unwrap();
        let b = a.clone();
        run_value(&a, &b, initial, &ops)?;
    }
}

proptest! {
    #![proptest_config(config(16))]

    #[test]
    fn named_value_matches_model_through_two_mappings(
        initial in any::<Triple>(),
        ops in prop::collection::vec((any::<bool>(), value_op()), 1..=150),
    ) {
        let name = unique_name("value");
        let _u = Unlink(name.clone());
        let a = Value::create(&name, initial).unwrap();
        let b = Value::<Triple>::open(&name).unwrap();
        run_value(&a, &b, initial, &ops)?;
    }
}

// ---------------------------------------------------------------------------
// Edge cases and bad input
// ---------------------------------------------------------------------------

#[test]
fn panicking_with_lock_closure_changes_nothing_and_releases_the_lock() {
    let v = Value::anonymous([1u16, 2, 3]).unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        v.with_lock(|t| {
            t[0] = 99;
            panic!("boom inside with_lock (expected by the test)");
        })
    }));
    assert!(r.is_err());
    assert_eq!(v.load(), Ok([1, 2, 3]));
    // The lock was released (a second lock would deadlock otherwise), cleanly.
    assert_eq!(v.with_lock(|t| t[1] = 7), Ok(()));
    assert_eq!(v.load(), Ok([1, 7, 3]));
    assert_eq!(v.recoveries(), 0);

    let a = Array::from_slice(&[5i32, 6, 7]).unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        a.with_lock(|s| {
            s.fill(0);
            panic!("boom inside Array::with_lock (expected by the test)");
        })
    }));
    assert!(r.is_err());
    assert_eq!(a.to_vec(), Ok(vec![5, 6, 7]));
    assert_eq!(a.set(1, 60), Ok(6));
    assert_eq!(a.to_vec(), Ok(vec![5, 60, 7]));
}

#[test]
fn zero_sized_and_word_sized_elements_work() {
    let unit = Value::anonymous(()).unwrap();
    assert_eq!(unit.load(), Ok(()));
    assert_eq!(unit.store(()), Ok(()));
    assert_eq!(unit.with_lock(|_| 5), Ok(5));
    let units = Array::<()>::anonymous(3).unwrap();
    assert_eq!(units.to_vec(), Ok(vec![(); 3]));
    assert_eq!(units.get(3), oob(3, 3));

    // A 64-bit element uses every bit of its word: no zero-extension surprises.
    let a = Array::from_slice(&[-1i64, i64::MIN]).unwrap();
    assert_eq!(a.fetch_add(0, 1), Ok(-1));
    assert_eq!(a.fetch_sub(1, 1), Ok(i64::MIN));
    assert_eq!(a.to_vec(), Ok(vec![0, i64::MAX]));
    // A negative i32 written under the lock, then compared lock-free.
    let b = Array::<i32>::anonymous(1).unwrap();
    assert_eq!(b.set(0, -5), Ok(0));
    assert_eq!(b.compare_exchange(0, -5, -6), Ok(Ok(-5)));
    assert_eq!(b.with_lock(|s| s[0] -= 1), Ok(()));
    assert_eq!(b.compare_exchange(0, -7, 1), Ok(Ok(-7)));
    assert_eq!(b.get(0), Ok(1));
}

#[test]
fn zero_length_array_is_invalid_and_creates_nothing() {
    assert!(matches!(
        Array::<u64>::anonymous(0),
        Err(Error::InvalidParameter(_))
    ));
    assert!(matches!(
        Array::<[u8; 5]>::from_slice(&[]),
        Err(Error::InvalidParameter(_))
    ));
    let name = unique_name("arr0");
    let _u = Unlink(name.clone());
    assert!(matches!(
        Array::<u32>::create(&name, 0),
        Err(Error::InvalidParameter(_))
    ));
    assert!(matches!(Array::<u32>::open(&name), Err(Error::NotFound(_))));
    // The name is free: a valid create afterwards succeeds.
    assert_eq!(Array::<u32>::create(&name, 1).unwrap().len(), 1);
}

#[test]
fn absurd_array_length_is_invalid() {
    assert!(matches!(
        Array::<u64>::anonymous(usize::MAX),
        Err(Error::InvalidParameter(_))
    ));
    assert!(matches!(
        Array::<[u8; 5]>::anonymous(usize::MAX / 2),
        Err(Error::InvalidParameter(_))
    ));
}

#[test]
fn value_and_array_open_of_a_dict_is_a_type_mismatch() {
    let name = unique_name("dict");
    let _u = Unlink(name.clone());
    let d = SharedDict::<u64, u64>::create(&name, 4).unwrap();
    d.insert(1, 2).unwrap();
    match Value::<u64>::open(&name) {
        Err(Error::TypeMismatch { expected, found }) => {
            // Told as what the caller asked for (a Value), not the Array
            // it is inside.
            assert_eq!(expected, "Value");
            assert_eq!(found, "SharedDict");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        Array::<u64>::open(&name),
        Err(Error::TypeMismatch { .. })
    ));
    assert!(matches!(
        Counter::open(&name),
        Err(Error::TypeMismatch { .. })
    ));
    // Untouched.
    assert_eq!(d.get(&1), Ok(Some(2)));
    assert_eq!(
        SharedDict::<u64, u64>::open(&name).unwrap().get(&1),
        Ok(Some(2))
    );
}

#[test]
fn dict_open_with_other_key_or_value_layout_is_an_element_mismatch() {
    let name = unique_name("dict-kv");
    let _u = Unlink(name.clone());
    let d = SharedDict::<u64, u32>::create(&name, 4).unwrap();
    d.insert(7, 70).unwrap();
    match SharedDict::<u64, u64>::open(&name) {
        Err(e @ Error::ElementMismatch { .. }) => assert_eq!(
            e.to_string(),
            "value type differs: this program's has size 8, align 8, no type id; \
             the object's has size 4, align 4, no type id"
        ),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        SharedDict::<u32, u32>::open(&name),
        Err(Error::ElementMismatch { role: "key", .. })
    ));
    // An explicit type id on equal layouts is another identity.
    assert!(matches!(
        SharedDict::<u64, multiproc::Tagged<u32, 4>>::open(&name),
        Err(Error::ElementMismatch { role: "value", .. })
    ));
    // Same sizes and alignments, other type names: the same identity.
    assert_eq!(
        SharedDict::<i64, i32>::open(&name).unwrap().get(&7),
        Ok(Some(70))
    );
    // Same size, smaller alignment: another identity.
    assert!(matches!(
        SharedDict::<u64, [u8; 4]>::open(&name),
        Err(Error::ElementMismatch { role: "value", .. })
    ));
    assert_eq!(
        SharedDict::<u64, u32>::open(&name).unwrap().get(&7),
        Ok(Some(70))
    );
}

#[test]
fn dict_capacity_zero_is_invalid_and_creates_nothing() {
    assert!(matches!(
        SharedDict::<u64, u64>::anonymous(0),
        Err(Error::InvalidParameter(_))
    ));
    let name = unique_name("dict0");
    let _u = Unlink(name.clone());
    assert!(matches!(
        SharedDict::<u64, u64>::create(&name, 0),
        Err(Error::InvalidParameter(_))
    ));
    assert!(matches!(
        SharedDict::<u64, u64>::open(&name),
        Err(Error::NotFound(_))
    ));
}

#[test]
fn value_and_array_open_checks_element_type_and_shape() {
    let name = unique_name("val");
    let _u = Unlink(name.clone());
    let v = Value::create(&name, [1u16, 2, 3]).unwrap();
    // Another size, or an alignment, is refused; equal layouts are one identity.
    assert!(matches!(
        Value::<[u8; 6]>::open(&name),
        Err(Error::ElementMismatch { .. })
    ));
    assert!(matches!(
        Value::<u64>::open(&name),
        Err(Error::ElementMismatch { .. })
    ));
    assert_eq!(
        Value::<[i16; 3]>::open(&name).unwrap().load(),
        Ok([1, 2, 3])
    );
    assert!(matches!(
        Counter::open(&name),
        Err(Error::TypeMismatch { .. })
    ));
    // A Value is an Array of length 1 (both record the kind "Array").
    let as_array = Array::<[u16; 3]>::open(&name).unwrap();
    assert_eq!(as_array.len(), 1);
    assert_eq!(as_array.set(0, [4, 5, 6]), Ok([1, 2, 3]));
    assert_eq!(v.load(), Ok([4, 5, 6]));

    let name = unique_name("arr3");
    let _u = Unlink(name.clone());
    let _a = Array::<u32>::create(&name, 3).unwrap();
    match Value::<u32>::open(&name) {
        Err(Error::TypeMismatch { expected, found }) => {
            assert_eq!((expected.as_str(), found.as_str()), ("Value", "Array"));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        Array::<i16>::open(&name),
        Err(Error::ElementMismatch { .. })
    ));
    assert_eq!(Array::<i32>::open(&name).unwrap().len(), 3);
}

#[test]
fn counter_debug_and_region_are_usable() {
    let c = Counter::anonymous(-3).unwrap();
    assert!(format!("{c:?}").contains("-3"));
    let v = Value::anonymous(7u8).unwrap();
    assert!(format!("{v:?}").contains('7'));
    let a = Array::<u8>::anonymous(4).unwrap();
    assert!(format!("{a:?}").contains('4'));
    let _ = (c.region(), v.region(), a.region());
}

/// A writing call on the same object from inside its own locked closure would
/// wait for a lock this thread holds: it is refused instead of hanging.
#[test]
fn reentrant_writes_are_refused_not_deadlocked() {
    let v: Value<u64> = Value::anonymous(1).unwrap();
    let inner = v.with_lock(|x| {
        *x += 1;
        v.store(5)
    });
    assert_eq!(inner, Ok(Err(ValueError::WouldDeadlock)));
    assert_eq!(v.load(), Ok(2));

    let a: Array<u32> = Array::anonymous(2).unwrap();
    let inner = a.with_lock(|s| {
        s[0] = 3;
        (a.set(1, 4), a.get(1))
    });
    assert_eq!(inner, Ok((Err(ValueError::WouldDeadlock), Ok(0))));
    assert_eq!(a.to_vec(), Ok(vec![3, 0]));

    let d: SharedDict<u64, u64> = SharedDict::anonymous(4).unwrap();
    d.insert(1, 1).unwrap();
    let inner = d.update(&1, |x| {
        *x += 1;
        (d.insert(2, 2), d.get(&1))
    });
    assert_eq!(
        inner,
        Ok(Some((
            Err(multiproc::DictError::WouldDeadlock),
            Ok(Some(1))
        )))
    );
    assert_eq!(d.get(&1), Ok(Some(2)));
    assert_eq!(d.len(), 1);
}
