//! Operations and history events: what the workload records and the checker
//! reads (spec section 3.1).

use serde_json::Value;

/// Event type of a history entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Invoke,
    Ok,
    Fail,
    Info,
}

/// Who performed an operation: a client process number or the nemesis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Process {
    Client(u64),
    Nemesis,
}

/// One entry of the history. `index` is its position (from 0), counting
/// client and nemesis events alike; `time_ns` is nanoseconds since test time 0.
///
/// `f` is `broadcast` or `read` for clients, `start-partition` or
/// `stop-partition` for the nemesis. `value` holds, as JSON: the integer for a
/// broadcast (invocation and completion); `null` for a read invocation and a
/// failed or indeterminate read; the returned `messages` array for an ok read;
/// the nemesis values of spec section 5 for nemesis events.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub index: u64,
    pub time_ns: u64,
    pub kind: EventType,
    pub process: Process,
    pub f: String,
    pub value: Value,
    pub final_read: bool,
    pub error: Option<String>,
}
