//! CloudStream/EdgeStream tunnel frames (KubeEdge's `pkg/stream/message.go`): one WebSocket
//! binary message is `uvarint(connectID) uvarint(type) data`. Sans-IO; a malformed frame is an
//! error, never a panic.
//!
//! What `data` holds is ours (KubeEdge sends Go structs of kubelet URLs): a connect message
//! carries a JSON [`LogsConnect`] or [`ExecConnect`]; the edge answers an accepted connect
//! with an empty `DATA`, then log bytes (logs) or remotecommand channel-tagged bytes (exec:
//! first byte 0 stdin, 1 stdout, 2 stderr, 3 error/status JSON). `CLOSE_CONNECT` from the edge
//! ends a session (its data, when not empty, is the reason it was refused); `REMOVE_CONNECT`
//! from the cloud tells the edge the client went away.

use serde::{Deserialize, Serialize};

/// `LOGS_CONNECT`.
pub const LOGS_CONNECT: u64 = 0;
/// `EXEC_CONNECT`.
pub const EXEC_CONNECT: u64 = 1;
/// `METRIC_CONNECT` (not served).
pub const METRIC_CONNECT: u64 = 2;
/// `DATA`.
pub const DATA: u64 = 3;
/// `REMOVE_CONNECT`: cloud → edge, the client closed.
pub const REMOVE_CONNECT: u64 = 4;
/// `CLOSE_CONNECT`: edge → cloud, the session ended.
pub const CLOSE_CONNECT: u64 = 5;
/// `ATTACH_CONNECT` (not served).
pub const ATTACH_CONNECT: u64 = 6;

/// The tunnel path the edge dials.
pub const TUNNEL_PATH: &str = "/v1/kubeedge/connect";
/// Header naming the node (KubeEdge's `SessionHostNameOverride`).
pub const HEADER_NODE: &str = "SessionHostNameOverride";
/// Header carrying the node's InternalIP (KubeEdge's `SessionInternalIP`).
pub const HEADER_INTERNAL_IP: &str = "SessionInternalIP";

/// One tunnel frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamFrame {
    /// The session it belongs to (chosen by the cloud).
    pub connect_id: u64,
    /// One of the type constants.
    pub kind: u64,
    /// The payload.
    pub data: Vec<u8>,
}

/// Why a frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The frame ended inside a varint.
    #[error("frame truncated inside the {field} varint")]
    Incomplete {
        /// Which field.
        field: &'static str,
    },
    /// A varint longer than 10 bytes or over 64 bits.
    #[error("the {field} varint overflows 64 bits")]
    Overflow {
        /// Which field.
        field: &'static str,
    },
    /// A type outside 0..=6.
    #[error("unknown frame type {0}")]
    UnknownType(u64),
}

/// Appends `v` as an unsigned LEB128 varint (Go's `binary.PutUvarint`).
pub fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads a varint from the front of `buf`: the value and the bytes used.
pub fn get_uvarint(buf: &[u8], field: &'static str) -> Result<(u64, usize), FrameError> {
    let mut v: u64 = 0;
    for (i, b) in buf.iter().enumerate() {
        if i == 10 || (i == 9 && *b > 1) {
            return Err(FrameError::Overflow { field });
        }
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok((v, i + 1));
        }
    }
    Err(FrameError::Incomplete { field })
}

impl StreamFrame {
    /// A frame.
    pub fn new(connect_id: u64, kind: u64, data: impl Into<Vec<u8>>) -> Self {
        Self {
            connect_id,
            kind,
            data: data.into(),
        }
    }

    /// The wire bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.data.len() + 4);
        put_uvarint(&mut out, self.connect_id);
        put_uvarint(&mut out, self.kind);
        out.extend_from_slice(&self.data);
        out
    }

    /// Parses wire bytes.
    pub fn decode(buf: &[u8]) -> Result<Self, FrameError> {
        let (connect_id, n) = get_uvarint(buf, "connectID")?;
        let (kind, m) = get_uvarint(&buf[n..], "type")?;
        if kind > ATTACH_CONNECT {
            return Err(FrameError::UnknownType(kind));
        }
        Ok(Self {
            connect_id,
            kind,
            data: buf[n + m..].to_vec(),
        })
    }
}

/// The pod a session is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodTarget {
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.uid` as the API server has it (the edge checks it against its own copy).
    pub uid: String,
    /// The container (resolved by the API server).
    pub container: String,
}

/// The data of `LOGS_CONNECT`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogsConnect {
    /// Whose logs.
    pub pod: PodTarget,
    /// Keep streaming as the log grows.
    pub follow: bool,
    /// Only the last lines.
    pub tail_lines: Option<u64>,
}

/// The data of `EXEC_CONNECT`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecConnect {
    /// Where to run.
    pub pod: PodTarget,
    /// argv.
    pub command: Vec<String>,
    /// Whether stdin frames will follow.
    pub stdin: bool,
    /// Whether a TTY was asked for (refused by the process runtime).
    pub tty: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Goal: varints match Go's `PutUvarint` byte for byte at the edges of each length.
    #[test]
    fn uvarint_known_encodings() {
        let cases: &[(u64, &[u8])] = &[
            (0, &[0]),
            (1, &[1]),
            (127, &[0x7f]),
            (128, &[0x80, 0x01]),
            (300, &[0xac, 0x02]),
            (
                u64::MAX,
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
            ),
        ];
        for (v, bytes) in cases {
            let mut out = Vec::new();
            put_uvarint(&mut out, *v);
            assert_eq!(&out, bytes, "{v}");
            assert_eq!(get_uvarint(bytes, "x"), Ok((*v, bytes.len())));
        }
    }

    /// Goal: malformed frames are errors: empty, cut inside a varint, an 11-byte varint, a
    /// 10th byte over 1, an unknown type.
    #[test]
    fn malformed_frames_are_errors() {
        assert_eq!(
            StreamFrame::decode(&[]),
            Err(FrameError::Incomplete { field: "connectID" })
        );
        assert_eq!(
            StreamFrame::decode(&[0x80]),
            Err(FrameError::Incomplete { field: "connectID" })
        );
        assert_eq!(
            StreamFrame::decode(&[5]),
            Err(FrameError::Incomplete { field: "type" })
        );
        assert_eq!(
            StreamFrame::decode(&[0xff; 11]),
            Err(FrameError::Overflow { field: "connectID" })
        );
        let mut ten = vec![0xff; 9];
        ten.push(0x02);
        assert_eq!(
            StreamFrame::decode(&ten),
            Err(FrameError::Overflow { field: "connectID" })
        );
        assert_eq!(
            StreamFrame::decode(&[1, 7]),
            Err(FrameError::UnknownType(7))
        );
    }

    proptest! {
        /// Goal: encode then decode is the identity for any id, type and payload.
        #[test]
        fn frames_round_trip(id in any::<u64>(), kind in 0u64..=6, data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let f = StreamFrame::new(id, kind, data);
            prop_assert_eq!(StreamFrame::decode(&f.encode()), Ok(f));
        }

        /// Goal: arbitrary bytes never panic the decoder.
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..32)) {
            let _ = StreamFrame::decode(&data);
        }
    }
}
