//! Deterministic identities for stored events.

use uuid::Uuid;

/// Namespace of the event ids (a fixed, random UUID: changing it would change every id).
pub const EVENT_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_2d4e_8a3b_4c5d_9e0f_1a2b_3c4d_5e6f);

/// The id of the event stored at (aggregate type, aggregate id, sequence).
///
/// Deterministic (UUIDv5), so every reader, the saga included, names an event the same way
/// without a lookup, and a replay produces the same ids.
pub fn event_id_of(aggregate_type: &str, aggregate_id: &str, sequence: u64) -> Uuid {
    let name = format!("{aggregate_type}/{aggregate_id}/{sequence}");
    Uuid::new_v5(&EVENT_ID_NAMESPACE, name.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_distinct() {
        let a = event_id_of("event", "x", 1);
        assert_eq!(a, event_id_of("event", "x", 1));
        assert_ne!(a, event_id_of("event", "x", 2));
        assert_ne!(a, event_id_of("moodle_sync", "x", 1));
    }
}
