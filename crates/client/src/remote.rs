//! `Remote`: what a transfer needs from the platform: uploads started, parts and downloads
//! signed, folders listed. The API implements it for a project (`ProjectRemote`); a benchmark
//! that signs with byos's presigning code directly implements it too, so that the transfer
//! engine is measured on its own.

use async_trait::async_trait;

use crate::api::{Api, DownloadUrl, Entry, Page, SignedPart, Upload};
use crate::error::ClientError;

#[async_trait]
pub trait Remote: Send + Sync + 'static {
    /// Starts an upload of `size` bytes to `path`, in parts of `part_size` when it is larger.
    async fn start_upload(&self, path: &str, size: u64, part_size: u64, overwrite: bool)
    -> Result<Upload, ClientError>;
    /// The open uploads, to resume one.
    async fn open_uploads(&self) -> Result<Vec<Upload>, ClientError>;
    /// An upload with the parts S3 holds.
    async fn upload_state(&self, id: &str) -> Result<Upload, ClientError>;
    async fn sign_parts(&self, id: &str, numbers: &[u32]) -> Result<Vec<SignedPart>, ClientError>;
    /// Completes an upload; answers the file's size as the platform sees it.
    async fn complete(&self, id: &str, parts: &[(u32, String)]) -> Result<u64, ClientError>;
    async fn download_url(&self, path: &str) -> Result<DownloadUrl, ClientError>;
    /// Whether [`Remote::download_urls`] signs many files with one call, so that a download
    /// signs its files ahead in batches; otherwise each file's task signs its own, in parallel.
    fn signs_in_batches(&self) -> bool {
        false
    }
    /// URLs for many files, in order: one call where the platform can sign many.
    async fn download_urls(&self, paths: &[String]) -> Result<Vec<Result<DownloadUrl, ClientError>>, ClientError> {
        let mut urls = Vec::with_capacity(paths.len());
        for path in paths {
            urls.push(self.download_url(path).await);
        }
        Ok(urls)
    }
    /// The entry at `path`, if any.
    async fn entry(&self, path: &str) -> Result<Option<Entry>, ClientError>;
    /// A page of a folder's children.
    async fn page(&self, folder: &str, token: Option<&str>) -> Result<Page, ClientError>;
}

/// A project of a byos server.
#[derive(Debug, Clone)]
pub struct ProjectRemote {
    pub api: Api,
    /// The project's id.
    pub project: String,
}

#[async_trait]
impl Remote for ProjectRemote {
    async fn start_upload(
        &self,
        path: &str,
        size: u64,
        part_size: u64,
        overwrite: bool,
    ) -> Result<Upload, ClientError> {
        self.api.create_upload(&self.project, path, size, Some(part_size), overwrite).await
    }

    async fn open_uploads(&self) -> Result<Vec<Upload>, ClientError> {
        self.api.uploads(&self.project).await
    }

    async fn upload_state(&self, id: &str) -> Result<Upload, ClientError> {
        self.api.upload(&self.project, id).await
    }

    async fn sign_parts(&self, id: &str, numbers: &[u32]) -> Result<Vec<SignedPart>, ClientError> {
        self.api.sign_parts(&self.project, id, numbers).await
    }

    async fn complete(&self, id: &str, parts: &[(u32, String)]) -> Result<u64, ClientError> {
        Ok(self.api.complete_upload(&self.project, id, parts).await?.size.unwrap_or_default())
    }

    async fn download_url(&self, path: &str) -> Result<DownloadUrl, ClientError> {
        self.api.download_url(&self.project, path).await
    }

    fn signs_in_batches(&self) -> bool {
        true
    }

    async fn download_urls(&self, paths: &[String]) -> Result<Vec<Result<DownloadUrl, ClientError>>, ClientError> {
        self.api.download_urls(&self.project, paths).await
    }

    async fn entry(&self, path: &str) -> Result<Option<Entry>, ClientError> {
        self.api.entry(&self.project, path).await
    }

    async fn page(&self, folder: &str, token: Option<&str>) -> Result<Page, ClientError> {
        self.api.browse(&self.project, folder, token).await
    }
}
