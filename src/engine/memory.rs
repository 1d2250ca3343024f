//! The memory pool behind `--memory-limit`.
//!
//! DataFusion's fair pool lets a sort or an aggregation take every byte that
//! operators which cannot spill have not taken yet. The Parquet writer cannot
//! spill, and it requests memory only once the sort before it streams rows, so
//! under one shared pool a sort that kept its rows in memory leaves the writer
//! nothing and the run fails. The writer therefore gets a fixed share of the
//! limit, and everything else shares the rest fairly.

use std::fmt;

use datafusion::error::Result;
use datafusion::execution::memory_pool::{
    FairSpillPool, GreedyMemoryPool, MemoryConsumer, MemoryLimit, MemoryPool,
    MemoryReservation,
};

/// The part of the limit kept for Parquet writers, as a divisor of the limit.
const WRITER_SHARE_DIVISOR: usize = 4;

/// Consumers whose names start with this are Parquet writers.
const WRITER_PREFIX: &str = "ParquetSink";

/// A pool that keeps a quarter of the limit for Parquet writers.
#[derive(Debug)]
pub(crate) struct SplitPool {
    limit: usize,
    writers: GreedyMemoryPool,
    operators: FairSpillPool,
}

impl SplitPool {
    /// Creates a pool of `limit` bytes in all.
    pub(crate) fn new(limit: usize) -> Self {
        let writer_share = limit / WRITER_SHARE_DIVISOR;
        Self {
            limit,
            writers: GreedyMemoryPool::new(writer_share),
            operators: FairSpillPool::new(limit - writer_share),
        }
    }

    fn pool_of(&self, consumer: &MemoryConsumer) -> &dyn MemoryPool {
        if consumer.name().starts_with(WRITER_PREFIX) {
            &self.writers
        } else {
            &self.operators
        }
    }
}

impl fmt::Display for SplitPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "split(writers: {}, operators: {})",
            self.writers, self.operators
        )
    }
}

impl MemoryPool for SplitPool {
    fn name(&self) -> &str {
        "split"
    }

    fn register(&self, consumer: &MemoryConsumer) {
        self.pool_of(consumer).register(consumer);
    }

    fn unregister(&self, consumer: &MemoryConsumer) {
        self.pool_of(consumer).unregister(consumer);
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.pool_of(reservation.consumer())
            .grow(reservation, additional);
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.pool_of(reservation.consumer())
            .shrink(reservation, shrink);
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> Result<()> {
        self.pool_of(reservation.consumer())
            .try_grow(reservation, additional)
    }

    fn reserved(&self) -> usize {
        self.writers.reserved() + self.operators.reserved()
    }

    fn memory_limit(&self) -> MemoryLimit {
        MemoryLimit::Finite(self.limit)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn sort_cannot_take_the_writer_share() {
        let pool: Arc<dyn MemoryPool> = Arc::new(SplitPool::new(400));
        let sort = MemoryConsumer::new("ExternalSorter[0]")
            .with_can_spill(true)
            .register(&pool);
        let writer =
            MemoryConsumer::new("ParquetSink(ArrowColumnWriter)").register(&pool);

        assert!(sort.try_grow(300).is_ok());
        assert!(
            sort.try_grow(1).is_err(),
            "the sort went past its 300 bytes"
        );
        assert!(writer.try_grow(100).is_ok());
        assert!(
            writer.try_grow(1).is_err(),
            "the writer went past its 100 bytes"
        );
        assert_eq!(pool.reserved(), 400);

        drop(sort);
        drop(writer);
        assert_eq!(pool.reserved(), 0);
    }
}
