//! The catalog's view of one object key: its versions, delete markers and tombstones, and the
//! rules that apply S3 events to it in any order.
