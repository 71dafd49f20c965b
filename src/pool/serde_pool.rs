//! Pool methods for any `Serialize + DeserializeOwned` argument and result
//! (feature `serde`), encoded with postcard into the same arena slots as the
//! [`Pod`](bytemuck::Pod) path.
//!
//! Each task's argument and result sits in a fixed-size *cell* of its chunk's
//! slot (`len: u32 LE`, then `len` bytes of postcard): argument cells are as
//! large as the largest encoded argument of the call, result cells
//! [`PoolBuilder::serde_result_size`](super::PoolBuilder::serde_result_size)
//! bytes. A result that does not fit fails its task with
//! [`PoolError::Panicked`] saying so; the failure semantics are otherwise the
//! `Pod` methods' (a panic is `Panicked`, a dead worker `WorkerDied` for the
//! task it ran, and so on).

use std::marker::PhantomData;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::engine::{Feed, Job, Results};
use super::wire::{self, CELL_LEN};
use super::{AsyncResult, Imap, Pool, PoolError, Release};

/// Decodes result cell `i` of a serde job.
fn item_serde<R: DeserializeOwned>(
    job: &mut Job,
    i: usize,
    cell: usize,
) -> Option<Result<R, PoolError>> {
    Some(match job.item_bytes(i, cell)? {
        Ok(bytes) => {
            let v =
                wire::cell_value(bytes).ok_or_else(|| PoolError::Serde("bad result cell".into()));
            v.and_then(|v| postcard::from_bytes(v).map_err(|e| PoolError::Serde(e.to_string())))
        }
        Err(e) => Err(e),
    })
}

fn decode_all<R: DeserializeOwned>(job: &mut Job, cell: usize) -> Result<Vec<R>, PoolError> {
    if let Some(e) = job.first_error() {
        return Err(e);
    }
    if !job.is_done() {
        return Err(PoolError::Terminated);
    }
    (0..job.len())
        .map(|i| item_serde(job, i, cell).unwrap_or(Err(PoolError::Terminated)))
        .collect()
}

impl Pool {
    fn result_cell(&self) -> usize {
        self.inner.cfg.serde_result
    }

    /// Encodes the arguments and submits the job; its id.
    fn submit_serde<A: Serialize + DeserializeOwned, R: Serialize + DeserializeOwned>(
        &self,
        f: fn(A) -> R,
        args: impl IntoIterator<Item = A>,
        chunksize: Option<usize>,
        track: bool,
    ) -> Result<(u64, usize), PoolError> {
        let encoded: Vec<Vec<u8>> = args
            .into_iter()
            .map(|a| postcard::to_allocvec(&a).map_err(|e| PoolError::Serde(e.to_string())))
            .collect::<Result<_, _>>()?;
        let n = encoded.len();
        let longest = encoded.iter().map(Vec::len).max().unwrap_or(0);
        // Cells 8-byte aligned, so the result cells stay aligned too.
        let asz = (CELL_LEN + longest).next_multiple_of(8);
        let rsz = self.result_cell().next_multiple_of(8);
        if u32::try_from(asz).is_err() {
            return Err(PoolError::TooLarge {
                needed: asz,
                max: self.inner.cfg.message_size,
            });
        }
        let spec = self.spec(f as usize, wire::call_serde::<A, R>, asz, rsz, n, chunksize)?;
        let feed: Box<Feed> = Box::new(move |first, count, out: &mut [u8]| {
            for (v, cell) in encoded
                .iter()
                .skip(first)
                .take(count)
                .zip(out.chunks_exact_mut(asz))
            {
                // Fits: the cells are sized by the longest encoding.
                wire::write_cell(cell, v);
            }
        });
        let job = self.inner.submit(
            spec,
            Box::new(Results::<u8>::new(n * rsz)),
            Some(feed),
            None,
            track,
        )?;
        Ok((job, rsz))
    }

    /// [`Pool::map`] for any serde types: `f` over every argument, results in
    /// order; the first failed task (in order) is the error. Arguments and
    /// results are encoded with postcard into the shared slots; see the
    /// [`serde_result_size`](super::PoolBuilder::serde_result_size) bound.
    ///
    /// ```no_run
    /// fn shout(s: String) -> String { s.to_uppercase() }
    /// let pool = multiproc::pool::Pool::new(2)?;
    /// let v = pool.map_serde(shout, ["a".to_string(), "bc".to_string()])?;
    /// assert_eq!(v, ["A", "BC"]);
    /// # Ok::<(), multiproc::pool::PoolError>(())
    /// ```
    pub fn map_serde<A: Serialize + DeserializeOwned, R: Serialize + DeserializeOwned>(
        &self,
        f: fn(A) -> R,
        args: impl IntoIterator<Item = A>,
    ) -> Result<Vec<R>, PoolError> {
        self.map_serde_chunked(f, args, 0)
    }

    /// [`Pool::map_serde`] with an explicit chunk size (0: the default rule).
    ///
    /// ```no_run
    /// fn len(s: String) -> usize { s.len() }
    /// let pool = multiproc::pool::Pool::new(2)?;
    /// assert_eq!(pool.map_serde_chunked(len, ["ab".to_string()], 1)?, vec![2]);
    /// # Ok::<(), multiproc::pool::PoolError>(())
    /// ```
    pub fn map_serde_chunked<A: Serialize + DeserializeOwned, R: Serialize + DeserializeOwned>(
        &self,
        f: fn(A) -> R,
        args: impl IntoIterator<Item = A>,
        chunksize: usize,
    ) -> Result<Vec<R>, PoolError> {
        let (job, cell) =
            self.submit_serde(f, args, (chunksize > 0).then_some(chunksize), false)?;
        let _guard = Release(&self.inner, job);
        self.inner.drive(None, None, |st| {
            let j = st.jobs.get_mut(&job)?;
            j.is_done().then(|| decode_all::<R>(j, cell))
        })?
    }

    /// [`Pool::imap`] for any serde types: each task's outcome, in argument
    /// order (`ordered`) or as tasks complete.
    ///
    /// ```no_run
    /// fn words(s: String) -> Vec<String> { s.split(' ').map(str::to_owned).collect() }
    /// let pool = multiproc::pool::Pool::new(2)?;
    /// let mut it = pool.imap_serde(words, ["a b".to_string()], true)?;
    /// assert_eq!(it.next(), Some(Ok(vec!["a".to_string(), "b".to_string()])));
    /// # Ok::<(), multiproc::pool::PoolError>(())
    /// ```
    pub fn imap_serde<A: Serialize + DeserializeOwned, R: Serialize + DeserializeOwned>(
        &self,
        f: fn(A) -> R,
        args: impl IntoIterator<Item = A>,
        ordered: bool,
    ) -> Result<SerdeImap<R>, PoolError> {
        let (job, cell) = self.submit_serde(f, args, None, !ordered)?;
        let n = self.inner.lock().jobs.get(&job).map_or(0, Job::len);
        Ok(SerdeImap {
            inner: Imap {
                inner: Arc::clone(&self.inner),
                job,
                next: 0,
                n,
                ordered,
                decode: |_, _| None,
                _r: PhantomData,
            },
            cell,
        })
    }

    /// [`Pool::apply`] for any serde types.
    ///
    /// ```no_run
    /// fn greet(name: String) -> String { format!("hello {name}") }
    /// let pool = multiproc::pool::Pool::new(1)?;
    /// assert_eq!(pool.apply_serde(greet, "you".to_string())?, "hello you");
    /// # Ok::<(), multiproc::pool::PoolError>(())
    /// ```
    pub fn apply_serde<A: Serialize + DeserializeOwned, R: Serialize + DeserializeOwned>(
        &self,
        f: fn(A) -> R,
        arg: A,
    ) -> Result<R, PoolError> {
        let mut v = self.map_serde_chunked(f, [arg], 1)?;
        v.pop().ok_or(PoolError::Terminated)
    }

    /// [`Pool::apply_async`] for any serde types (the result is decoded by
    /// every `get`).
    ///
    /// ```no_run
    /// fn greet(name: String) -> String { format!("hello {name}") }
    /// let pool = multiproc::pool::Pool::new(1)?;
    /// let r = pool.apply_async_serde(greet, "you".to_string())?;
    /// assert_eq!(r.get()?, "hello you");
    /// # Ok::<(), multiproc::pool::PoolError>(())
    /// ```
    pub fn apply_async_serde<A: Serialize + DeserializeOwned, R: Serialize + DeserializeOwned>(
        &self,
        f: fn(A) -> R,
        arg: A,
    ) -> Result<AsyncResult<R>, PoolError> {
        let (job, _) = self.submit_serde(f, [arg], Some(1), false)?;
        Ok(AsyncResult::new(&self.inner, job, decode_first_serde::<R>))
    }
}

/// `AsyncResult`'s decoder takes no cell size: the job's result size is it.
fn decode_first_serde<R: DeserializeOwned>(job: &mut Job) -> Result<R, PoolError> {
    let cell = job.cell_size();
    item_serde(job, 0, cell).unwrap_or(Err(PoolError::Terminated))
}

/// The iterator of [`Pool::imap_serde`]: one `Result` per task.
#[derive(Debug)]
pub struct SerdeImap<R> {
    inner: Imap<R>,
    cell: usize,
}

impl<R: DeserializeOwned> Iterator for SerdeImap<R> {
    type Item = Result<R, PoolError>;

    fn next(&mut self) -> Option<Result<R, PoolError>> {
        let it = &mut self.inner;
        if it.next >= it.n {
            return None;
        }
        let (job, i, ordered, cell) = (it.job, it.next, it.ordered, self.cell);
        let r = it.inner.drive(None, None, |st| {
            let Some(j) = st.jobs.get_mut(&job) else {
                return Some(Err(PoolError::Terminated));
            };
            if ordered {
                item_serde(j, i, cell)
            } else {
                let k = j.completed.pop_front()?;
                item_serde(j, k, cell)
            }
        });
        it.next += 1;
        Some(r.unwrap_or_else(Err))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl<R: DeserializeOwned> ExactSizeIterator for SerdeImap<R> {}
