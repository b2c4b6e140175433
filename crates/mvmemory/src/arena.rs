//! Where the memory's cells live: one append-only arena per worker.
//!
//! A block's first write of a location creates its cell (about 256 bytes: the location, its
//! full values and its deltas, the common case of one entry each inline). Kept inline in the
//! shard tables, each new cell landed at a random place in a table the previous block had
//! left cold, and the copy waited for those four lines: in `perf annotate` of `record`, about
//! 60% of its samples, and for cheap transactions (transfers) the largest single cost of the
//! engine. In a worker's own arena the cells a worker creates follow each other in memory,
//! where the previous one left the line warm and the core's prefetchers run ahead; the tables
//! hold only a hash and a pointer (16 bytes).

use std::{mem::MaybeUninit, ptr::NonNull};

/// Cells per chunk: 64 KiB of 256-byte cells.
const CHUNK: usize = 256;

/// An append-only store of `T`s at stable addresses: chunks are allocated as needed and kept
/// (with their memory) until the arena is dropped; [`Arena::clear`] drops the values only.
pub(crate) struct Arena<T> {
    /// Each chunk's first element; every chunk holds [`CHUNK`] elements, the first `len` of
    /// the arena initialized (chunk by chunk).
    chunks: Vec<NonNull<MaybeUninit<T>>>,
    /// Initialized elements.
    len: usize,
}

// SAFETY: the arena owns its elements (it drops them); moving it to another thread moves them.
unsafe impl<T: Send> Send for Arena<T> {}

impl<T> Default for Arena<T> {
    fn default() -> Self {
        Self { chunks: Vec::new(), len: 0 }
    }
}

impl<T> Arena<T> {
    /// Moves `value` into the arena. The returned pointer stays valid (and the value in place)
    /// until [`Arena::clear`], [`Arena::take_all`] or the arena's drop; the arena never forms a
    /// reference to it.
    pub(crate) fn push(&mut self, value: T) -> NonNull<T> {
        let (chunk, offset) = (self.len / CHUNK, self.len % CHUNK);
        if chunk == self.chunks.len() {
            let fresh: Box<[MaybeUninit<T>]> = Box::new_uninit_slice(CHUNK);
            // SAFETY: `Box::into_raw` never returns null.
            let first = unsafe { NonNull::new_unchecked(Box::into_raw(fresh).cast()) };
            self.chunks.push(first);
        }
        // SAFETY: `offset < CHUNK`, inside the chunk's allocation; the slot is uninitialized
        // (the first `len` are the initialized ones), so nothing is overwritten.
        unsafe {
            let slot = self.chunks[chunk].as_ptr().add(offset).cast::<T>();
            slot.write(value);
            self.len += 1;
            NonNull::new_unchecked(slot)
        }
    }

    /// Number of values in the arena.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Drops every value, keeping the chunks for the next block.
    pub(crate) fn clear(&mut self) {
        let len = std::mem::replace(&mut self.len, 0);
        for i in 0..len {
            // SAFETY: the first `len` elements are initialized; `len` is already 0, so none is
            // dropped twice even if a drop panics.
            unsafe { self.chunks[i / CHUNK].as_ptr().add(i % CHUNK).cast::<T>().drop_in_place() };
        }
    }

    /// Moves every value out (in the order they were pushed), leaving the arena empty.
    pub(crate) fn take_all(&mut self) -> Vec<T> {
        let len = std::mem::replace(&mut self.len, 0);
        (0..len)
            // SAFETY: the first `len` elements are initialized and, `len` being 0 now, read
            // exactly once.
            .map(|i| unsafe { self.chunks[i / CHUNK].as_ptr().add(i % CHUNK).cast::<T>().read() })
            .collect()
    }
}

impl<T> Drop for Arena<T> {
    fn drop(&mut self) {
        self.clear();
        for first in self.chunks.drain(..) {
            let chunk = std::ptr::slice_from_raw_parts_mut(first.as_ptr(), CHUNK);
            // SAFETY: allocated in `push` as a boxed slice of `CHUNK` elements, freed once;
            // `MaybeUninit` drops nothing.
            drop(unsafe { Box::from_raw(chunk) });
        }
    }
}

impl<T> std::fmt::Debug for Arena<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Arena").field("len", &self.len).field("chunks", &self.chunks.len()).finish()
    }
}

thread_local! {
    /// The arena this thread creates its cells in (see [`bind_worker`]).
    static WORKER: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Binds the calling thread to worker `index` of the memories it writes: the cells it creates
/// go to that worker's arena (`index` modulo their count), where they follow the ones it
/// created before. Threads never bound use the first arena. A binding only places cells: two
/// threads bound alike stay correct (each arena has a lock) but share one arena's lines.
pub fn bind_worker(index: usize) {
    WORKER.with(|w| w.set(index));
}

/// The worker index the calling thread was bound to (see [`bind_worker`]; 0 if never bound).
pub fn bound_worker() -> usize {
    WORKER.with(std::cell::Cell::get)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{rc::Rc, sync::Arc};

    #[test]
    fn values_stay_in_place_across_chunks_and_are_dropped_once() {
        let counter = Arc::new(());
        let mut arena = Arena::default();
        let ptrs: Vec<_> =
            (0..3 * CHUNK + 5).map(|i| arena.push((i, Arc::clone(&counter)))).collect();
        assert_eq!(arena.len(), 3 * CHUNK + 5);
        for (i, p) in ptrs.iter().enumerate() {
            // SAFETY: the arena is alive and was not cleared.
            assert_eq!(unsafe { p.as_ref() }.0, i);
        }
        assert_eq!(Arc::strong_count(&counter), 3 * CHUNK + 6);
        arena.clear();
        assert_eq!(Arc::strong_count(&counter), 1);
        // The chunks are reused: the same addresses again.
        let again = arena.push((7, Arc::clone(&counter)));
        assert_eq!(again, ptrs[0]);
        drop(arena);
        assert_eq!(Arc::strong_count(&counter), 1);
    }

    #[test]
    fn take_all_moves_the_values_out_in_order() {
        let mut arena = Arena::default();
        for i in 0..CHUNK + 3 {
            arena.push(Rc::new(i));
        }
        let all = arena.take_all();
        assert_eq!(all.len(), CHUNK + 3);
        assert!(all.iter().enumerate().all(|(i, v)| **v == i && Rc::strong_count(v) == 1));
        assert_eq!(arena.len(), 0);
        drop(arena);
    }

    #[test]
    fn a_thread_keeps_its_binding() {
        assert_eq!(bound_worker(), 0);
        std::thread::spawn(|| {
            bind_worker(3);
            assert_eq!(bound_worker(), 3);
        })
        .join()
        .unwrap();
        assert_eq!(bound_worker(), 0);
    }
}
