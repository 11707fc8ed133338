//! KubeEdge wire model (being written).
