mod redis_only;
mod sqlite_only;
