//! Model-based property tests for `SharedDict`, single process.
//!
//! Random operation sequences drive a `SharedDict` next to a
//! `std::collections::HashMap` model, and every result is compared with the
//! model *exactly*: each return value, each `DictError::Full((k, v))` (given
//! exactly when the model holds `capacity` entries and the key is new, with the
//! pair handed back and nothing changed), `len()`/`is_empty()` after every step,
//! and `iter()` (collected and sorted) against the sorted model after every step.
//! Every few steps all keys of the key space are looked up with `get` and
//! `contains_key` (absent keys too, so probes cross tombstones).
//!
//! Capacities are small (1..=12, i.e. 2..=16 slots) and key spaces are small
//! (1..=24 keys), so with up to 300 operations per case keys recur, the table
//! fills up, collisions and probe chains are the norm, and removals churn
//! tombstones that later inserts must reuse. The hash key is either the default,
//! an explicit random seed, or drawn by `random_seed`, so layouts vary.
//!
//! Two key/value shapes: `u64 -> u64` (one word each), and `FixedStr<8> -> [u8; 3]`
//! (a 10-byte key and a 3-byte value: both end in a zero-padded partial word).

use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::Hash;

use bytemuck::Pod;
use multiproc::{DictError, DictOptions, FixedStr, SharedDict};
use proptest::prelude::*;
use proptest::test_runner::Config;

/// No failure persistence, so a failing run writes no files into the source tree.
fn config(cases: u32) -> Config {
    Config {
        failure_persistence: None,
        ..Config::with_cases(cases)
    }
}

/// A value type the `update` closures can change deterministically.
trait Val: Pod + Eq + Debug {
    fn bump(&mut self, d: u8);
}

impl Val for u64 {
    fn bump(&mut self, d: u8) {
        *self = self.wrapping_mul(3).wrapping_add(u64::from(d) + 1);
    }
}

impl Val for [u8; 3] {
    fn bump(&mut self, d: u8) {
        self[0] = self[0].wrapping_add(d).wrapping_add(1);
        self[1] = self[1].rotate_left(1) ^ d;
        self[2] = self[2].wrapping_sub(d);
    }
}

/// An operation; keys are indices into the case's key space.
#[derive(Clone, Debug)]
enum Op<V> {
    Insert(usize, V),
    Get(usize),
    Remove(usize),
    /// `update(k, |v| { let old = *v; v.bump(d); old })`.
    Update(usize, u8),
    /// `update_or_insert(k, default, |v| { let old = *v; v.bump(d); old })`.
    UpdateOrInsert(usize, V, u8),
    GetOrInsert(usize, V),
    ContainsKey(usize),
    Clear,
    Len,
    Iter,
}

fn op<V: Clone + Debug>(
    keys: usize,
    val: impl Strategy<Value = V> + Clone + 'static,
) -> impl Strategy<Value = Op<V>> {
    let k = 0..keys;
    prop_oneof![
        10 => (k.clone(), val.clone()).prop_map(|(k, v)| Op::Insert(k, v)),
        5 => k.clone().prop_map(Op::Get),
        6 => k.clone().prop_map(Op::Remove),
        4 => (k.clone(), any::<u8>()).prop_map(|(k, d)| Op::Update(k, d)),
        4 => (k.clone(), val.clone(), any::<u8>())
            .prop_map(|(k, v, d)| Op::UpdateOrInsert(k, v, d)),
        4 => (k.clone(), val).prop_map(|(k, v)| Op::GetOrInsert(k, v)),
        3 => k.prop_map(Op::ContainsKey),
        1 => Just(Op::Clear),
        1 => Just(Op::Len),
        1 => Just(Op::Iter),
    ]
}

/// How the dict's hash key is chosen.
#[derive(Clone, Copy, Debug)]
enum Seed {
    Default,
    Fixed(u64, u64),
    Random,
}

fn seed() -> impl Strategy<Value = Seed> {
    prop_oneof![
        Just(Seed::Default),
        any::<(u64, u64)>().prop_map(|(a, b)| Seed::Fixed(a, b)),
        Just(Seed::Random),
    ]
}

/// A whole case: capacity, hash key, and up to 300 operations over a key space
/// of 1..=24 keys.
fn case<V: Clone + Debug + 'static>(
    val: impl Strategy<Value = V> + Clone + 'static,
) -> impl Strategy<Value = (usize, Seed, usize, Vec<Op<V>>)> {
    (1usize..=12, seed(), 1usize..=24).prop_flat_map(move |(cap, seed, keys)| {
        (
            Just(cap),
            Just(seed),
            Just(keys),
            prop::collection::vec(op(keys, val.clone()), 1..=300),
        )
    })
}

fn make<K: Pod, V: Pod>(cap: usize, seed: Seed) -> SharedDict<K, V> {
    let opts = match seed {
        Seed::Default => DictOptions::new(),
        Seed::Fixed(a, b) => DictOptions::new().seed(a, b),
        Seed::Random => DictOptions::new().random_seed(),
    };
    SharedDict::anonymous_with(cap, opts).expect("create dict")
}

/// Entries sorted by key bytes (keys need not be `Ord`).
fn sorted<K: Pod, V: Pod>(mut v: Vec<(K, V)>) -> Vec<(K, V)> {
    v.sort_by(|a, b| bytemuck::bytes_of(&a.0).cmp(bytemuck::bytes_of(&b.0)));
    v
}

/// Runs `ops` on a fresh dict and on the model; `key(i)` is key number `i`.
fn run<K, V>(
    cap: usize,
    seed: Seed,
    keys: usize,
    ops: &[Op<V>],
    key: impl Fn(usize) -> K,
) -> Result<(), TestCaseError>
where
    K: Pod + Eq + Hash + Debug,
    V: Val,
{
    let d: SharedDict<K, V> = make(cap, seed);
    let mut m: HashMap<K, V> = HashMap::new();

    let stats = d.stats();
    prop_assert_eq!(d.capacity(), cap);
    prop_assert_eq!(stats.capacity, cap);
    prop_assert!(stats.slots.is_power_of_two());
    prop_assert!(cap * 4 <= stats.slots * 3, "load factor: {:?}", stats);
    prop_assert!(cap < stats.slots, "always an empty slot: {:?}", stats);

    for (step, op) in ops.iter().enumerate() {
        let full = m.len() >= cap;
        match op.clone() {
            Op::Insert(i, v) => {
                let k = key(i);
                let want = if m.contains_key(&k) || !full {
                    Ok(m.insert(k, v))
                } else {
                    Err(DictError::Full((k, v)))
                };
                prop_assert_eq!(d.insert(k, v), want, "step {}: {:?}", step, op);
            }
            Op::Get(i) => {
                let k = key(i);
                prop_assert_eq!(d.get(&k), Ok(m.get(&k).copied()), "step {}: {:?}", step, op);
            }
            Op::Remove(i) => {
                let k = key(i);
                prop_assert_eq!(d.remove(&k), Ok(m.remove(&k)), "step {}: {:?}", step, op);
            }
            Op::Update(i, delta) => {
                let k = key(i);
                let want = m.get_mut(&k).map(|v| {
                    let old = *v;
                    v.bump(delta);
                    old
                });
                let mut calls = 0;
                let got = d.update(&k, |v| {
                    calls += 1;
                    let old = *v;
                    v.bump(delta);
                    old
                });
                prop_assert_eq!(got, Ok(want), "step {}: {:?}", step, op);
                prop_assert_eq!(calls, usize::from(want.is_some()), "step {}: f calls", step);
            }
            Op::UpdateOrInsert(i, default, delta) => {
                let k = key(i);
                let want = match m.get_mut(&k) {
                    Some(v) => {
                        let old = *v;
                        v.bump(delta);
                        Ok(old)
                    }
                    None if full => Err(DictError::Full((k, default))),
                    None => {
                        let mut v = default;
                        v.bump(delta);
                        m.insert(k, v);
                        Ok(default)
                    }
                };
                let got = d.update_or_insert(k, default, |v| {
                    let old = *v;
                    v.bump(delta);
                    old
                });
                prop_assert_eq!(got, want, "step {}: {:?}", step, op);
            }
            Op::GetOrInsert(i, v) => {
                let k = key(i);
                let want = match m.get(&k) {
                    Some(old) => Ok(*old),
                    None if full => Err(DictError::Full((k, v))),
                    None => {
                        m.insert(k, v);
                        Ok(v)
                    }
                };
                prop_assert_eq!(d.get_or_insert(k, v), want, "step {}: {:?}", step, op);
            }
            Op::ContainsKey(i) => {
                let k = key(i);
                prop_assert_eq!(d.contains_key(&k), Ok(m.contains_key(&k)), "step {}", step);
            }
            Op::Clear => {
                prop_assert_eq!(d.clear(), Ok(()), "step {}", step);
                m.clear();
            }
            Op::Len => {
                prop_assert_eq!(d.stats().len, m.len(), "step {}", step);
            }
            Op::Iter => {
                let ks = d.keys().expect("keys");
                let vs = d.values().expect("values");
                prop_assert_eq!(ks.len(), m.len(), "step {}: keys()", step);
                prop_assert_eq!(vs.len(), m.len(), "step {}: values()", step);
                for (k, v) in ks.iter().zip(&vs) {
                    prop_assert_eq!(m.get(k), Some(v), "step {}: keys()/values() pair", step);
                }
            }
        }

        // After every step: exact length and the full contents.
        prop_assert_eq!(d.len(), m.len(), "step {}: len after {:?}", step, op);
        prop_assert_eq!(d.is_empty(), m.is_empty(), "step {}", step);
        let got = sorted(d.iter().expect("iter").collect());
        let want = sorted(m.iter().map(|(k, v)| (*k, *v)).collect());
        prop_assert_eq!(got, want, "step {}: contents after {:?}", step, op);

        // Periodically: every key of the space, present or not.
        if step % 8 == 7 || step + 1 == ops.len() {
            for i in 0..keys {
                let k = key(i);
                prop_assert_eq!(
                    d.get(&k),
                    Ok(m.get(&k).copied()),
                    "step {}: sweep {:?}",
                    step,
                    k
                );
                prop_assert_eq!(d.contains_key(&k), Ok(m.contains_key(&k)), "step {}", step);
            }
        }
    }
    let stats = d.stats();
    prop_assert_eq!(stats.len, m.len());
    prop_assert_eq!(stats.recoveries, 0, "no writer died");
    Ok(())
}

/// Key number `i` of the `FixedStr<8>` key space: lengths 0 to 8, shared
/// prefixes, and strings that differ only in their last byte.
fn str_key(i: usize) -> FixedStr<8> {
    const KEYS: [&str; 24] = [
        "",
        "a",
        "b",
        "ab",
        "ba",
        "abc",
        "abcd",
        "abcde",
        "abcdef",
        "abcdefg",
        "abcdefgh",
        "abcdefgi",
        "bbcdefgh",
        "zzzzzzzz",
        "k0",
        "k1",
        "k2",
        "k10",
        "k11",
        "key",
        "keys",
        "\u{e9}t\u{e9}",
        "0",
        "00",
    ];
    FixedStr::try_new(KEYS[i]).expect("fits in 8 bytes")
}

proptest! {
    #![proptest_config(config(192))]

    #[test]
    fn u64_dict_matches_hashmap((cap, seed, keys, ops) in case(any::<u64>())) {
        run::<u64, u64>(cap, seed, keys, &ops, |i| i as u64)?;
    }
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn fixed_str_key_odd_value_dict_matches_hashmap(
        (cap, seed, keys, ops) in case(any::<[u8; 3]>())
    ) {
        run::<FixedStr<8>, [u8; 3]>(cap, seed, keys, &ops, str_key)?;
    }
}

/// Deterministic churn at full capacity: for every small capacity, keep the dict
/// full while keys move through a sliding window, so every insert must reuse a
/// tombstone or an emptied slot; nothing may be refused while a slot is free, and
/// every new key beyond capacity is refused with its pair.
#[test]
fn churn_at_full_capacity_reuses_slots() {
    for cap in 1..=12usize {
        let d: SharedDict<u64, u64> = SharedDict::anonymous(cap).unwrap();
        let mut m = HashMap::new();
        for k in 0..cap as u64 {
            assert_eq!(d.insert(k, k * 7), Ok(None));
            m.insert(k, k * 7);
        }
        for round in 0..400u64 {
            let new = cap as u64 + round;
            // Full: the new key is refused and handed back; nothing changes.
            assert_eq!(d.insert(new, 1), Err(DictError::Full((new, 1))));
            assert_eq!(d.get_or_insert(new, 2), Err(DictError::Full((new, 2))));
            assert_eq!(
                d.update_or_insert(new, 3, |v| *v += 1),
                Err(DictError::Full((new, 3)))
            );
            assert_eq!(d.len(), cap);
            // Remove a key (round-robin over the window, not always the oldest),
            // then the new key fits.
            let victim = *m.keys().min_by_key(|k| (**k * 31 + round) % 17).unwrap();
            assert_eq!(d.remove(&victim), Ok(m.remove(&victim)));
            assert_eq!(d.remove(&victim), Ok(None));
            assert_eq!(d.insert(new, new * 7), Ok(None), "cap {cap} round {round}");
            m.insert(new, new * 7);
            assert_eq!(d.len(), cap);
            let got = sorted(d.iter().unwrap().collect());
            let want = sorted(m.iter().map(|(k, v)| (*k, *v)).collect());
            assert_eq!(got, want, "cap {cap} round {round}");
            for k in new.saturating_sub(40)..=new {
                assert_eq!(d.get(&k), Ok(m.get(&k).copied()), "cap {cap} key {k}");
            }
        }
        // Clear resets everything, and the dict fills to capacity again.
        d.clear().unwrap();
        assert!(d.is_empty());
        for k in 0..cap as u64 {
            assert_eq!(d.insert(k + 1000, k), Ok(None));
        }
        assert_eq!(
            d.insert(5000, 0),
            Err(DictError::Full((5000, 0))),
            "cap {cap}"
        );
        assert_eq!(d.stats().recoveries, 0);
    }
}
