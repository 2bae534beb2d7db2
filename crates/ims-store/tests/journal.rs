//! When a write's records reach its pending manifest: with a grace period of zero, before the chunk they
//! name is stored (write-ahead); otherwise buffered, in few segments, each record durable within two lags
//! (`min(0.5 s, grace / 32)`) of its chunk's store, even while the write waits for data.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use common::watched::{Watch, Watched};
use common::*;
use ims_store::{ChunkId, ChunkStore};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, PutOptions, PutPayload, PutResult};

/// The longest a record may wait with the default grace period (one day): two lags of 0.5 s.
const DEFAULT_BOUND: Duration = Duration::from_secs(1);
/// The puts themselves, and timers late on a machine busy with other tests.
const SLACK: Duration = Duration::from_secs(1);

/// Remembers when each chunk's put was asked for and when each pending manifest segment landed.
#[derive(Debug, Default)]
struct Timeline {
    events: Mutex<Vec<Event>>,
}

#[derive(Debug, Clone)]
enum Event {
    Chunk(String, Instant),
    Segment(Vec<String>, Instant),
}

impl Timeline {
    fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }

    /// For every chunk put: how long after it the segment naming it landed (`None`: no segment did).
    fn record_delays(&self) -> Vec<(String, Option<Duration>)> {
        let events = self.events();
        let mut recorded: HashMap<&str, Instant> = HashMap::new();
        for event in &events {
            if let Event::Segment(ids, at) = event {
                for id in ids {
                    recorded.entry(id.as_str()).or_insert(*at);
                }
            }
        }
        let chunks = events.iter().filter_map(|e| match e {
            Event::Chunk(id, at) => Some((id.clone(), recorded.get(id.as_str()).map(|r| r.saturating_duration_since(*at)))),
            Event::Segment(..) => None,
        });
        chunks.collect()
    }

    /// Whether every chunk was named by a segment that landed before the chunk was put.
    fn recorded_before_stored(&self) -> bool {
        let mut recorded = std::collections::HashSet::new();
        self.events().into_iter().all(|event| match event {
            Event::Segment(ids, _) => {
                recorded.extend(ids);
                true
            }
            Event::Chunk(id, _) => recorded.contains(&id),
        })
    }

    fn segments(&self) -> usize {
        self.events().iter().filter(|e| matches!(e, Event::Segment(..))).count()
    }
}

#[async_trait]
impl Watch for Timeline {
    async fn put(
        &self,
        inner: &Arc<dyn ObjectStore>,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let name = location.as_ref().to_string();
        if name.starts_with("chunks/") {
            let id = name.rsplit('/').next().unwrap_or_default().to_string();
            self.events.lock().unwrap().push(Event::Chunk(id, Instant::now()));
        }
        let body: Bytes = payload.clone().into();
        let result = inner.put_opts(location, payload, opts).await;
        if name.starts_with("manifests/pending/") && result.is_ok() {
            let ids = body.chunks_exact(32).map(|id| ChunkId(id.try_into().unwrap()).to_string()).collect();
            self.events.lock().unwrap().push(Event::Segment(ids, Instant::now()));
        }
        result
    }
}

fn timeline_store() -> (Arc<Watched<Timeline>>, ChunkStore) {
    let objects = Watched::new(InMemory::new(), Timeline::default());
    (objects.clone(), ChunkStore::new(objects))
}

#[tokio::test]
async fn with_a_grace_of_zero_each_record_is_durable_before_its_chunk_is_stored() {
    let (timeline, store) = timeline_store();
    store.set_gc_grace(Duration::ZERO);
    let summary = write_in_pieces(&store, &random_bytes(24 * MIB, 1), 1).await.unwrap();
    assert!(summary.chunks_new > 8, "{summary:?}");
    assert!(timeline.watch.recorded_before_stored(), "{:?}", timeline.watch.events());
}

#[tokio::test]
async fn records_go_out_in_few_segments_each_within_two_lags_of_its_chunk() {
    let (timeline, store) = timeline_store();
    let started = Instant::now();
    let summary = write_in_pieces(&store, &random_bytes(48 * MIB, 2), 2).await.unwrap();
    let took = started.elapsed();
    assert!(summary.chunks_new > 16, "{summary:?}");
    let delays = timeline.watch.record_delays();
    assert_eq!(delays.len() as u64, summary.chunks_new);
    for (chunk, delay) in delays {
        let delay = delay.unwrap_or_else(|| panic!("chunk {chunk} was never recorded"));
        assert!(delay <= DEFAULT_BOUND + SLACK, "chunk {chunk} recorded {delay:?} after it was stored");
    }
    // One per lag while the write ran, one at its end, and a record call that found a full buffer.
    let most = 2 + took.as_millis() as usize / 500;
    assert!(timeline.watch.segments() <= most, "{} segments for {} chunks in {took:?}", timeline.watch.segments(), summary.chunks_new);
    let id = summary.pending_id.unwrap();
    assert_eq!(store.pending_chunks(&id).await.unwrap().len() as u64, summary.chunks_new);
}

#[tokio::test]
async fn a_write_waiting_for_data_still_records_its_chunks_within_two_lags() {
    let (timeline, store) = timeline_store();
    let mut writer = store.writer();
    writer.write(Bytes::from(random_bytes(6 * MIB, 3))).await.unwrap();
    // No more data and no finish: the chunks stored so far must be recorded all the same.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let delays = timeline.watch.record_delays();
        if !delays.is_empty() && delays.iter().all(|(_, d)| d.is_some()) {
            for (chunk, delay) in delays {
                assert!(delay.unwrap() <= DEFAULT_BOUND + SLACK, "chunk {chunk} recorded {delay:?} after it was stored");
            }
            break;
        }
        if let Some((chunk, _)) = delays.iter().find(|(_, d)| d.is_none()) {
            let stored_at = timeline.watch.events().iter().find_map(|e| match e {
                Event::Chunk(id, at) if id == chunk => Some(*at),
                _ => None,
            });
            assert!(stored_at.unwrap().elapsed() <= DEFAULT_BOUND + SLACK, "chunk {chunk} not recorded in time");
        }
        assert!(Instant::now() < deadline, "the write stored nothing");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    writer.finish().await.unwrap();
}
