//! Arbitrary records and events against an established room: the input of
//! the `room` fuzz target, run by proptest in every test run.

use proptest::prelude::*;

use crate::testkit::{run_room_script, Step};

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (any::<u8>(), proptest::collection::vec(any::<u8>(), 0..64))
            .prop_map(|(k, p)| Step::Record(k, p)),
        1 => proptest::collection::vec(any::<u8>(), 0..40).prop_map(Step::Raw),
        2 => proptest::collection::vec(any::<u8>(), 0..64).prop_map(Step::Input),
        1 => Just(Step::InputEnded),
        1 => Just(Step::Leave),
        1 => Just(Step::Interrupt),
        1 => any::<u16>().prop_map(Step::Wait),
        1 => Just(Step::Fin),
        1 => Just(Step::Reset),
        1 => any::<bool>().prop_map(Step::Stall),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn arbitrary_records_and_events_never_panic_or_leak(
        steps in proptest::collection::vec(step(), 0..24)
    ) {
        run_room_script(&steps);
    }
}

#[test]
fn fuzzer_bytes_parse_into_steps() {
    let steps = Step::parse(&[1, 3, b'a', b'b', b'c', 8, 0, 4]);
    assert!(matches!(&steps[0], Step::Record(0, p) if p == b"abc"));
    assert!(matches!(steps[1], Step::Fin));
    run_room_script(&steps);
}
