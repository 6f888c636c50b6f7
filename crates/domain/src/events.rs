//! S3 event notifications as the sync engine reads them: the SQS message body, its records,
//! form-url-decoded keys and the per-key `sequencer` order.
