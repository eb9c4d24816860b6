//! Model-based property tests: a simulated provider with a random history, a simulated poller
//! made of this module's functions plus an in-memory state, and assertions that every change is
//! reported exactly once and nothing is invented.

use super::super::*;
use crate::dates::{DateFormat, Zone};
use proptest::prelude::*;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// Provider clock at poll k: `BASE + POLL_INTERVAL * k` seconds.
const POLL_INTERVAL: i64 = 10;

fn base() -> DateTime<Utc> {
    DateTime::from_timestamp(1_795_900_000, 0).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

fn provider_clock(poll: usize) -> DateTime<Utc> {
    base() + TimeDelta::seconds(POLL_INTERVAL * poll as i64)
}

/// A tiny deterministic generator for page orders, duplicates and page sizes: proptest picks
/// the seed, so failures shrink and replay.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound.max(1) as u64) as usize
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }

    /// The records in random order, some sent twice (providers shift pages under load), split
    /// into random pages.
    fn pages(&mut self, mut records: Vec<Value>) -> Vec<Vec<Value>> {
        let duplicates: Vec<Value> = records
            .iter()
            .filter(|_| self.below(4) == 0)
            .cloned()
            .collect();
        records.extend(duplicates);
        self.shuffle(&mut records);
        let mut pages = Vec::new();
        while !records.is_empty() {
            let size = 1 + self.below(4);
            let rest = records.split_off(size.min(records.len()));
            pages.push(std::mem::replace(&mut records, rest));
        }
        pages
    }
}

// --- watermark mode -----------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Change {
    Create,
    Update,
    Delete,
}

/// One change in the provider's history. `at` is its updated date; it becomes visible
/// (committed) `lag` seconds later.
#[derive(Clone, Debug)]
struct HistoryEntry {
    id: u8,
    change: Change,
    at: i64,
    lag: i64,
}

/// A version of a record as the provider holds it.
#[derive(Clone, Debug)]
struct Version {
    id: u8,
    deleted: bool,
    updated: DateTime<Utc>,
    created: DateTime<Utc>,
    visible_from: DateTime<Utc>,
}

impl Version {
    fn pair(&self) -> (String, DateTime<Utc>) {
        (self.id.to_string(), self.updated)
    }

    fn is_create(&self) -> bool {
        self.created == self.updated
    }
}

/// Turns the history into versions per id, in updated order: the first change of an id (and
/// the first after a delete) is its creation, a creation of a live record is an update, and of
/// two changes of one id at one instant the later drawn wins (a pair names one version).
fn versions(history: &[HistoryEntry]) -> Vec<Version> {
    let mut last_per_instant: BTreeMap<(u8, i64), &HistoryEntry> = BTreeMap::new();
    for entry in history {
        last_per_instant.insert((entry.id, entry.at), entry);
    }
    let sorted = last_per_instant.into_values();
    let mut out = Vec::new();
    let mut alive_since: HashMap<u8, DateTime<Utc>> = HashMap::new();
    for entry in sorted {
        let updated = base() + TimeDelta::seconds(entry.at);
        let visible_from = updated + TimeDelta::seconds(entry.lag);
        let created = match (entry.change, alive_since.get(&entry.id)) {
            (Change::Delete, Some(&created)) => {
                alive_since.remove(&entry.id);
                out.push(Version {
                    id: entry.id,
                    deleted: true,
                    updated,
                    created,
                    visible_from,
                });
                continue;
            }
            (Change::Create | Change::Update, Some(&created)) => created,
            (_, None) => {
                alive_since.insert(entry.id, updated);
                updated
            }
        };
        out.push(Version {
            id: entry.id,
            deleted: false,
            updated,
            created,
            visible_from,
        });
    }
    out
}

/// The provider at one instant: per id the newest committed version, unless it is a delete.
fn live_versions(versions: &[Version], clock: DateTime<Utc>) -> Vec<&Version> {
    let mut newest: BTreeMap<u8, &Version> = BTreeMap::new();
    for version in versions.iter().filter(|v| v.visible_from <= clock) {
        // `versions` is in updated order per id, so a later one replaces an earlier one.
        newest.insert(version.id, version);
    }
    newest.into_values().filter(|v| !v.deleted).collect()
}

fn record_json(version: &Version) -> Value {
    json!({
        "id": version.id,
        "name": format!("record {}", version.id),
        "updated_at": version.updated.to_rfc3339(),
        "created_at": version.created.to_rfc3339(),
    })
}

fn model_dates() -> DatesConfig {
    let field = |path: &str| DateField {
        path: FieldPath::parse(path),
        format: DateFormat::new("yyyy-MM-dd'T'HH:mm:ssXXX").expect("format compiles"),
        zone: Zone::utc(),
    };
    DatesConfig {
        updated: field("updated_at"),
        created: Some(field("created_at")),
    }
}

/// The committed state of one resource, as the state store keeps it.
#[derive(Default)]
struct PollerState {
    watermark: Option<DateTime<Utc>>,
    seen: HashSet<(String, DateTime<Utc>)>,
}

/// What a committed poll turned into events, in the order they were staged.
struct PollOutcome {
    events: Vec<(String, DateTime<Utc>, EventType)>,
    served: Vec<(String, DateTime<Utc>)>,
    baseline: bool,
    problems: usize,
}

#[derive(Debug)]
struct Scenario {
    versions: Vec<Version>,
    lookback: Duration,
    skew_seconds: i64,
    aborted: Vec<bool>,
    seed: u64,
}

/// Runs one poll against the provider; `None` when the poll aborts before its final commit
/// (then the staging rows are dropped and the state is untouched).
fn poll_once(
    scenario: &Scenario,
    state: &mut PollerState,
    poll: usize,
    rng: &mut SplitMix,
) -> Option<PollOutcome> {
    let clock = provider_clock(poll);
    let ocpoll_now = clock + TimeDelta::seconds(scenario.skew_seconds);
    let since = query_since(state.watermark, scenario.lookback, ocpoll_now);
    let served_versions: Vec<&Version> = live_versions(&scenario.versions, clock)
        .into_iter()
        .filter(|v| v.updated >= since)
        .collect();
    let mut records: Vec<Value> = served_versions.iter().map(|v| record_json(v)).collect();
    // A record whose date cannot be read: reported, never an event, never the watermark.
    records.push(json!({"id": "broken", "updated_at": "yesterday", "created_at": null}));

    let id_field = FieldPath::parse("id");
    let dates = model_dates();
    let baseline = state.watermark.is_none();
    let mut staged: Vec<(String, DateTime<Utc>, EventType)> = Vec::new();
    let mut staged_pairs: HashSet<(String, DateTime<Utc>)> = HashSet::new();
    let mut newest: Option<DateTime<Utc>> = None;
    let mut problems = 0;
    let pages = rng.pages(records);
    let abort_after_page = scenario.aborted[poll].then(|| rng.below(pages.len() + 1));
    for (page_number, page) in pages.iter().enumerate() {
        if abort_after_page == Some(page_number) {
            return None;
        }
        for record in page {
            let observed = match observe(record, &id_field, &dates) {
                Ok(observed) => observed,
                Err(problem) => {
                    assert!(
                        matches!(problem, RecordProblem::BadDate { .. }),
                        "{problem}"
                    );
                    problems += 1;
                    continue;
                }
            };
            newest = next_newest(newest, observed.updated);
            let pair = (observed.id.clone(), observed.updated);
            let verdict = match state.watermark {
                // The baseline remembers everything it saw and emits nothing.
                None => Verdict::New(EventType::Updated),
                Some(watermark) => judge(&observed, watermark, scenario.lookback, |id, updated| {
                    state.seen.contains(&(id.to_owned(), updated))
                }),
            };
            // The staging table is unique on (id, updated): a record sent twice is staged once.
            if let Verdict::New(event_type) = verdict
                && staged_pairs.insert(pair.clone())
            {
                staged.push((pair.0, pair.1, event_type));
            }
        }
    }
    if abort_after_page == Some(pages.len()) {
        return None;
    }

    // The final commit: events into the outbox, the watermark moved, the seen set trimmed.
    let watermark = match state.watermark {
        None => baseline_watermark(newest, Some(clock), ocpoll_now),
        Some(previous) => next_watermark(previous, newest),
    };
    state.watermark = Some(watermark);
    state.seen.extend(staged_pairs);
    let floor = seen_floor(watermark, scenario.lookback);
    state.seen.retain(|(_, updated)| *updated >= floor);
    Some(PollOutcome {
        events: if baseline { Vec::new() } else { staged },
        served: served_versions.iter().map(|v| v.pair()).collect(),
        baseline,
        problems,
    })
}

fn next_newest(newest: Option<DateTime<Utc>>, updated: DateTime<Utc>) -> Option<DateTime<Utc>> {
    Some(newest.map_or(updated, |newest| newest.max(updated)))
}

fn history_strategy(polls: usize) -> impl Strategy<Value = Vec<HistoryEntry>> {
    let horizon = POLL_INTERVAL * polls as i64;
    let entry = (
        0u8..4,
        prop_oneof![
            Just(Change::Create),
            Just(Change::Update),
            Just(Change::Delete)
        ],
        // Multiples of 5 s so that several records share one timestamp.
        (-6i64..=horizon / 5).prop_map(|slot| slot * 5),
        prop_oneof![3 => Just(0i64), 2 => 1i64..40],
    )
        .prop_map(|(id, change, at, lag)| HistoryEntry {
            id,
            change,
            at,
            lag,
        });
    prop::collection::vec(entry, 0..24)
}

fn scenario_strategy() -> impl Strategy<Value = Scenario> {
    (3usize..10).prop_flat_map(|polls| {
        (
            history_strategy(polls),
            prop_oneof![Just(0u64), Just(5), Just(10), Just(25), Just(60)],
            prop_oneof![Just(0i64), -7200i64..7200],
            prop::collection::vec(prop::bool::weighted(0.2), polls),
            any::<u64>(),
        )
            .prop_map(
                |(history, lookback, skew_seconds, aborted, seed)| Scenario {
                    versions: versions(&history),
                    lookback: Duration::from_secs(lookback),
                    skew_seconds,
                    aborted,
                    seed,
                },
            )
    })
}

fn check_watermark_scenario(scenario: &Scenario) -> Result<(), TestCaseError> {
    let mut state = PollerState::default();
    let mut rng = SplitMix(scenario.seed);
    let mut reported: HashMap<(String, DateTime<Utc>), (usize, EventType)> = HashMap::new();
    let mut served_at_baseline: HashSet<(String, DateTime<Utc>)> = HashSet::new();
    let mut served_later: HashSet<(String, DateTime<Utc>)> = HashSet::new();
    let mut committed_polls: Vec<usize> = Vec::new();
    let mut baseline_poll = None;
    let history_pairs: HashSet<(String, DateTime<Utc>)> =
        scenario.versions.iter().map(Version::pair).collect();

    for poll in 0..scenario.aborted.len() {
        let Some(outcome) = poll_once(scenario, &mut state, poll, &mut rng) else {
            continue;
        };
        // Once per copy the provider sent: a problem record is never an event.
        prop_assert!(outcome.problems >= 1, "the broken record was not reported");
        committed_polls.push(poll);
        if outcome.baseline {
            prop_assert!(outcome.events.is_empty());
            baseline_poll = Some(poll);
            served_at_baseline.extend(outcome.served);
        } else {
            served_later.extend(outcome.served);
        }
        for (id, updated, event_type) in outcome.events {
            let pair = (id, updated);
            prop_assert!(history_pairs.contains(&pair), "invented {:?}", pair);
            prop_assert!(
                !served_at_baseline.contains(&pair),
                "{:?} was part of the baseline",
                pair
            );
            let earlier = reported.insert(pair.clone(), (poll, event_type));
            prop_assert!(
                earlier.is_none(),
                "{:?} reported twice: {:?} and poll {}",
                pair,
                earlier,
                poll
            );
        }
    }

    // Every record a committed poll after the baseline read, and the baseline did not, is an event.
    for pair in served_later.difference(&served_at_baseline) {
        prop_assert!(
            reported.contains_key(pair),
            "{:?} was read but never reported",
            pair
        );
    }

    // Independently of what the provider happened to answer: every version committed after the
    // baseline within the lookback window, and live at some committed poll after the baseline,
    // is reported.
    if let Some(baseline_poll) = baseline_poll {
        let baseline_clock = provider_clock(baseline_poll);
        let later_polls: Vec<usize> = committed_polls
            .iter()
            .copied()
            .filter(|&p| p > baseline_poll)
            .collect();
        for version in scenario.versions.iter().filter(|v| !v.deleted) {
            let lag = version.visible_from - version.updated;
            let within_window =
                lag <= TimeDelta::from_std(scenario.lookback).unwrap_or(TimeDelta::MAX);
            let live_later = later_polls.iter().any(|&poll| {
                live_versions(&scenario.versions, provider_clock(poll))
                    .iter()
                    .any(|live| live.pair() == version.pair())
            });
            if within_window && live_later && version.visible_from > baseline_clock {
                prop_assert!(
                    reported.contains_key(&version.pair()),
                    "{:?} (lag {}) was committed after the baseline and live later, never reported",
                    version.pair(),
                    lag
                );
            }
        }
    }

    // Event types: a creation is CREATED; a change to a record whose creation was reported in an
    // earlier poll is UPDATED.
    for version in scenario.versions.iter().filter(|v| !v.deleted) {
        let Some(&(poll, event_type)) = reported.get(&version.pair()) else {
            continue;
        };
        if version.is_create() {
            prop_assert_eq!(event_type, EventType::Created, "{:?}", version);
        } else if let Some(&(create_poll, _)) =
            reported.get(&(version.id.to_string(), version.created))
            && create_poll < poll
        {
            prop_assert_eq!(event_type, EventType::Updated, "{:?}", version);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn watermark_mode_reports_every_change_exactly_once(scenario in scenario_strategy()) {
        check_watermark_scenario(&scenario)?;
    }

    #[test]
    fn snapshot_mode_reports_every_difference_exactly_once(
        polls in prop::collection::vec(
            (
                prop::collection::vec((0u8..5, prop::option::weighted(0.75, 0u8..3)), 0..5),
                prop::bool::weighted(0.2),
            ),
            1..8,
        ),
        seed in any::<u64>(),
    ) {
        check_snapshot_scenario(&polls, seed)?;
    }
}

// --- snapshot mode ------------------------------------------------------------------------

/// Each poll first applies its changes to the provider (`Some(content)` sets, `None` deletes),
/// then reads the whole resource; the bool aborts the poll before its commit.
type SnapshotPoll = (Vec<(u8, Option<u8>)>, bool);

fn check_snapshot_scenario(polls: &[SnapshotPoll], seed: u64) -> Result<(), TestCaseError> {
    let mut rng = SplitMix(seed);
    let mut provider: BTreeMap<u8, u8> = BTreeMap::new();
    // The committed snapshot: id -> content hash; `None` before the first committed poll.
    let mut snapshot: Option<HashMap<String, String>> = None;
    // The provider as the last committed poll saw it, to compute what must be reported.
    let mut last_committed_view: Option<BTreeMap<u8, u8>> = None;
    let id_field = FieldPath::parse("id");

    for (changes, aborted) in polls {
        for &(id, content) in changes {
            match content {
                Some(content) => provider.insert(id, content),
                None => provider.remove(&id),
            };
        }
        let records: Vec<Value> = provider
            .iter()
            .map(|(id, content)| json!({"id": id, "body": {"v": content, "k": "x"}}))
            .collect();
        let mut current: HashMap<String, String> = HashMap::new();
        let mut events: Vec<(String, EventType)> = Vec::new();
        for page in rng.pages(records) {
            for record in page {
                let id = record_id(&record, &id_field)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                let hash = content_hash(&record);
                if current.insert(id.clone(), hash.clone()).is_some() {
                    continue; // staged already (unique per poll and id)
                }
                if let Some(previous) = &snapshot
                    && let Some(event_type) =
                        snapshot_verdict(previous.get(&id).map(String::as_str), &hash)
                {
                    events.push((id, event_type));
                }
            }
        }
        if let Some(previous) = &snapshot {
            for id in previous.keys().filter(|id| !current.contains_key(*id)) {
                events.push((id.clone(), EventType::Deleted));
            }
        }
        if *aborted {
            continue;
        }

        let reported: BTreeSet<(String, EventType)> = events.iter().cloned().collect();
        prop_assert_eq!(
            reported.len(),
            events.len(),
            "an id reported twice in one poll"
        );
        let expected = match &last_committed_view {
            None => BTreeSet::new(), // the first poll only records the snapshot
            Some(before) => expected_snapshot_events(before, &provider),
        };
        prop_assert_eq!(reported, expected);
        snapshot = Some(current);
        last_committed_view = Some(provider.clone());
    }
    Ok(())
}

fn expected_snapshot_events(
    before: &BTreeMap<u8, u8>,
    after: &BTreeMap<u8, u8>,
) -> BTreeSet<(String, EventType)> {
    let mut expected = BTreeSet::new();
    for (id, content) in after {
        match before.get(id) {
            None => expected.insert((id.to_string(), EventType::Created)),
            Some(old) if old != content => expected.insert((id.to_string(), EventType::Updated)),
            Some(_) => false,
        };
    }
    for id in before.keys().filter(|id| !after.contains_key(id)) {
        expected.insert((id.to_string(), EventType::Deleted));
    }
    expected
}

/// The model's own check that its test can fail: a poller that forgets the seen set reports
/// records at the watermark instant twice.
#[test]
fn the_model_catches_a_poller_that_forgets_what_it_saw() {
    let scenario = Scenario {
        versions: versions(&[
            HistoryEntry {
                id: 1,
                change: Change::Create,
                at: 5,
                lag: 0,
            },
            HistoryEntry {
                id: 2,
                change: Change::Create,
                at: 15,
                lag: 0,
            },
        ]),
        lookback: Duration::ZERO,
        skew_seconds: 0,
        aborted: vec![false; 4],
        seed: 1,
    };
    // The right poller passes.
    assert!(check_watermark_scenario(&scenario).is_ok());
    // Record 2 is reported at poll 2; with the seen set wiped it is reported again at poll 3.
    let mut state = PollerState::default();
    let mut rng = SplitMix(1);
    let mut count = 0;
    for poll in 0..4 {
        let outcome = poll_once(&scenario, &mut state, poll, &mut rng).expect("no aborts");
        count += outcome.events.iter().filter(|(id, _, _)| id == "2").count();
        state.seen.clear();
    }
    assert_eq!(count, 2);
}
