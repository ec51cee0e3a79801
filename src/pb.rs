//! Generated protobuf code: prost messages, tonic services and pbjson serde, one module per
//! proto package, and the encoded descriptor set. Nothing here is written by hand.

#![allow(clippy::all, clippy::unwrap_used, clippy::panic, missing_docs)]

pub mod iamd {
    tonic::include_proto!("iamd");

    pub mod admin {
        pub mod v1 {
            tonic::include_proto!("iamd.admin.v1");
            include!(concat!(env!("OUT_DIR"), "/iamd.admin.v1.serde.rs"));
        }
    }

    #[cfg(test)]
    pub mod echo {
        pub mod v1 {
            tonic::include_proto!("iamd.echo.v1");
            include!(concat!(env!("OUT_DIR"), "/iamd.echo.v1.serde.rs"));
        }
    }

    #[cfg(test)]
    pub mod echolax {
        pub mod v1 {
            tonic::include_proto!("iamd.echolax.v1");
            include!(concat!(env!("OUT_DIR"), "/iamd.echolax.v1.serde.rs"));
        }
    }

    pub mod authz {
        pub mod v1 {
            tonic::include_proto!("iamd.authz.v1");
            include!(concat!(env!("OUT_DIR"), "/iamd.authz.v1.serde.rs"));
        }
    }

    pub mod authzen {
        pub mod v1 {
            tonic::include_proto!("iamd.authzen.v1");
            include!(concat!(env!("OUT_DIR"), "/iamd.authzen.v1.serde.rs"));
        }
    }

    pub mod history {
        pub mod v1 {
            tonic::include_proto!("iamd.history.v1");
            include!(concat!(env!("OUT_DIR"), "/iamd.history.v1.serde.rs"));
        }
    }

    pub mod iam {
        pub mod v2 {
            tonic::include_proto!("iamd.iam.v2");
            include!(concat!(env!("OUT_DIR"), "/iamd.iam.v2.serde.rs"));
        }
    }

    pub mod accounts {
        pub mod v1 {
            tonic::include_proto!("iamd.accounts.v1");
            include!(concat!(env!("OUT_DIR"), "/iamd.accounts.v1.serde.rs"));
        }
    }
}

pub mod google {
    pub mod api {
        tonic::include_proto!("google.api");
    }
}

/// Every file of `proto/` and its imports, with extension options intact.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/iamd_descriptor.bin"));

/// The product and the test-only services, for the transcoder's unit tests.
#[cfg(test)]
pub const TEST_FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/test_descriptor.bin"));

include!(concat!(env!("OUT_DIR"), "/method_codecs.rs"));
