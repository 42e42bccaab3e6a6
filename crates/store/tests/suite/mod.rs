//! The engine-independent tests, each an `async fn(Arc<dyn KvStore>)`, grouped by topic.

pub mod kv;
pub mod list;
pub mod misc;
pub mod rate;

pub use kv::*;
pub use list::*;
pub use misc::*;
pub use rate::*;
