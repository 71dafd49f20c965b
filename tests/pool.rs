//! Pool tests with real worker processes.

use multiproc::pool::{Pool, PoolError};

fn pool(n: usize) -> Pool {
    // SAFETY: the test harness runs other threads; the tasks below only do
    // arithmetic, panic, or end their own process, and take no lock.
    unsafe { Pool::builder().processes(n).fork_unchecked() }
        .build()
        .expect("pool")
}

fn square(x: u64) -> u64 {
    x * x
}

#[test]
fn map_squares() {
    let p = pool(2);
    let v = p.map(square, 0..100u64).unwrap();
    assert_eq!(v, (0..100u64).map(square).collect::<Vec<_>>());
}
