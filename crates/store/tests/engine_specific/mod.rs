mod postgres_only;
mod redis_only;
mod sqlite_only;
