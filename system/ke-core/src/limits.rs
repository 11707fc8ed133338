//! Every bound of the system in one place, so a reviewer can see them all at once.

/// Largest cloud<->edge frame accepted by the decoder (KubeEdge's QUIC cap is 32 MiB; a single
/// Kubernetes object is at most 1.5 MiB in etcd, so 8 MiB leaves room for lists).
pub const FRAME_BYTES_MAX: usize = 8 * 1024 * 1024;

/// Largest request body the API server reads (kube-apiserver's limit is 3 MiB).
pub const API_REQUEST_BYTES_MAX: usize = 3 * 1024 * 1024;

/// Events kept in the API server's in-memory watch window; a watch from an older
/// resourceVersion gets `410 Gone`.
pub const WATCH_WINDOW_EVENTS_MAX: usize = 100_000;

/// Events buffered per watcher; one that falls further behind resumes from the watch window
/// (and gets `410 Gone`, so relists, only once the window has moved past what it missed).
pub const WATCH_FANOUT_BUFFER_MAX: usize = 10_000;

/// Largest `limit` honoured for one list page.
pub const LIST_PAGE_MAX: usize = 100_000;

/// Initial read buffer of each websocket end (CloudHub and EdgeHub). tungstenite's default of
/// 128 KiB per socket costs 2.7 GB per 10,000 nodes and slows the simulator 4×; frames larger
/// than this still arrive (the buffer grows up to the frame limit while reading one).
pub const WS_READ_BUFFER_BYTES: usize = 4 * 1024;

/// Largest MQTT packet (remaining length) edgecore's embedded broker reads; a client sending
/// a larger one is disconnected before its payload is read. Twin payloads are at most 64 KiB.
pub const MQTT_PACKET_BYTES_MAX: usize = 1024 * 1024;

/// Client connections the embedded MQTT broker serves at once; further ones are closed at
/// accept.
pub const MQTT_CONNECTIONS_MAX: usize = 1_024;

/// Subscriptions (topic filters) one MQTT client may hold on the embedded broker; a SUBSCRIBE
/// beyond it gets the failure return code for the extra filters.
pub const MQTT_SUBSCRIPTIONS_MAX: usize = 1_000;
