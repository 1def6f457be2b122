//! The local stack's AWS side: the same table, queues and secrets the deployment has, created on the AWS
//! emulator from the same definitions (`store::schema`, `store::sqs`), and a poller that plays SQS's event
//! source mapping for the sender function (batch size, batching window, partial batch failures; the
//! queue's redrive policy moves a message that keeps failing to the dead-letter queue), and a poller that
//! plays the DynamoDB stream's event source mapping for the stream function.

pub mod bootstrap;
mod invoke;
pub mod poller;
pub mod stream_poller;
