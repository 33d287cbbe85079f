//! A switch that makes any object store unreachable, for tests and demos: a decorator around the
//! real `object_store` client (the local folder or S3) that fails every call, and every part of
//! an upload under way, while it is on, as a store that cannot be reached would. The portal's
//! storage client is built on the wrapped store and does not know it is wrapped.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::{self, BoxStream, StreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result, UploadPart,
};

/// The switch, shared by the test (or demo) and the wrapped store.
#[derive(Debug, Default)]
pub struct StorageFaults {
    /// While true, every call fails as if the store were unreachable.
    pub unavailable: AtomicBool,
}

impl StorageFaults {
    fn check(&self) -> Result<()> {
        if self.unavailable.load(Ordering::Relaxed) {
            return Err(object_store::Error::Generic {
                store: "stand-in",
                source: "storage is unavailable (switched off for a test)".into(),
            });
        }
        Ok(())
    }
}

/// `inner`, failing while `faults.unavailable` is on.
#[derive(Debug)]
pub struct Switchable {
    pub inner: Arc<dyn ObjectStore>,
    pub faults: Arc<StorageFaults>,
}

impl Switchable {
    /// Wraps `inner`; returns the wrapped store and its switch.
    pub fn wrap(inner: Arc<dyn ObjectStore>) -> (Arc<dyn ObjectStore>, Arc<StorageFaults>) {
        let faults = Arc::new(StorageFaults::default());
        let store = Arc::new(Switchable {
            inner,
            faults: faults.clone(),
        });
        (store, faults)
    }
}

impl fmt::Display for Switchable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.inner)
    }
}

#[async_trait]
impl ObjectStore for Switchable {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.faults.check()?;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.faults.check()?;
        let inner = self.inner.put_multipart_opts(location, opts).await?;
        Ok(Box::new(SwitchableUpload {
            inner,
            faults: self.faults.clone(),
        }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.faults.check()?;
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.faults.check()?;
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        if let Err(e) = self.faults.check() {
            return stream::once(async move { Err(e) }).boxed();
        }
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        if let Err(e) = self.faults.check() {
            return stream::once(async move { Err(e) }).boxed();
        }
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.faults.check()?;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.faults.check()?;
        self.inner.copy_opts(from, to, options).await
    }
}

#[derive(Debug)]
struct SwitchableUpload {
    inner: Box<dyn MultipartUpload>,
    faults: Arc<StorageFaults>,
}

#[async_trait]
impl MultipartUpload for SwitchableUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        if let Err(e) = self.faults.check() {
            return Box::pin(async move { Err(e) });
        }
        self.inner.put_part(data)
    }

    async fn complete(&mut self) -> Result<PutResult> {
        self.faults.check()?;
        self.inner.complete().await
    }

    async fn abort(&mut self) -> Result<()> {
        self.inner.abort().await
    }
}
