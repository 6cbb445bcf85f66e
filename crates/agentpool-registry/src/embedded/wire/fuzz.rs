//! The frame decoder against arbitrary bytes: whatever a peer (or a corrupt stream) sends,
//! decoding answers frames or an error, never a panic, and a frame it accepts that is not a
//! call is refused as one.

use super::{Call, Reply, Request, codec};
use agentpool_types::TaskId;
use proptest::prelude::*;
use tokio_util::bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

/// Decodes every frame in `bytes`, as the socket's reader would, and parses each as both
/// sides do; returns how many frames were whole.
fn decode_all(bytes: &[u8]) -> usize {
    let mut codec = codec();
    let mut buf = BytesMut::from(bytes);
    let mut frames = 0;
    while let Ok(Some(frame)) = codec.decode(&mut buf) {
        frames += 1;
        let _ = serde_json::from_slice::<Request>(&frame);
        let _ = serde_json::from_slice::<Reply>(&frame);
    }
    frames
}

/// A length prefix followed by `body`, as the peer's encoder writes it.
fn framed(body: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    codec()
        .encode(tokio_util::bytes::Bytes::copy_from_slice(body), &mut out)
        .expect("encode");
    out.to_vec()
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        decode_all(&bytes);
    }

    #[test]
    fn framed_garbage_is_refused_as_a_call(body in proptest::collection::vec(any::<u8>(), 0..2048)) {
        prop_assert_eq!(decode_all(&framed(&body)), 1);
        // Random bytes are not a call unless they happen to be one; they must not panic and,
        // being no JSON object with `id` and `call`, parse as an error.
        if !body.starts_with(b"{") {
            prop_assert!(serde_json::from_slice::<Request>(&body).is_err());
        }
    }

    #[test]
    fn json_of_the_wrong_shape_is_refused(id in any::<i64>(), name in "[a-z_]{0,24}", n in any::<i64>()) {
        let body = format!(r#"{{"id": {id}, "call": {{"{name}": {{"process_id": {n}}}}}}}"#);
        prop_assert_eq!(decode_all(&framed(body.as_bytes())), 1);
        prop_assert!(serde_json::from_slice::<Request>(body.as_bytes()).is_err());
    }

    #[test]
    fn a_real_call_survives_the_trip(id in any::<u64>()) {
        let request = Request { id, call: Call::Task { task_id: TaskId::new() } };
        let body = serde_json::to_vec(&request).expect("encode the call");
        let frames = framed(&body);
        let mut buf = BytesMut::from(&frames[..]);
        let frame = codec().decode(&mut buf).unwrap().expect("one whole frame");
        let back: Request = serde_json::from_slice(&frame).expect("the call parses back");
        prop_assert_eq!(back.id, id);
        let is_task = matches!(back.call, Call::Task { .. });
        prop_assert!(is_task, "came back as {:?}", back.call);
    }
}
