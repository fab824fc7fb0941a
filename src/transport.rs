//! From an image location to a reader or a writer: layouts and archives
//! are opened here, registries through one lazily started registry
//! [`Client`]. Copying is then one line: walk the source's content and
//! write it to the sink.

use std::sync::{Arc, OnceLock};

use crate::image::archive::{DockerArchive, DockerArchiveSink, OciArchive, OciArchiveSink};
use crate::image::layout::{Layout, LayoutSink};
use crate::image::{Content, ImageError, ImageSource, Sink, WriteReport};
use crate::oci::ImageRef;
use crate::registry::{Client, ClientOptions, PushOptions, RegistrySink};
use crate::report::Reporter;

/// Opens locations for reading and writing.
pub struct Transport {
    opts: ClientOptions,
    reporter: Arc<dyn Reporter>,
    client: OnceLock<Client>,
}

impl Transport {
    /// Registries are reached with `opts`; progress goes to `reporter`.
    pub fn new(opts: ClientOptions, reporter: Arc<dyn Reporter>) -> Transport {
        Transport { opts, reporter, client: OnceLock::new() }
    }

    /// The registry client, started on first use.
    pub fn client(&self) -> Result<&Client, ImageError> {
        if let Some(c) = self.client.get() {
            return Ok(c);
        }
        let c = Client::new(self.opts.clone(), self.reporter.clone()).map_err(|e| ImageError::Registry(Box::new(e)))?;
        Ok(self.client.get_or_init(|| c))
    }

    /// Opens `loc` for reading.
    pub fn open(&self, loc: &ImageRef) -> Result<Box<dyn ImageSource>, ImageError> {
        let shown = loc.to_string();
        Ok(match loc {
            ImageRef::Layout { dir, tag } => Box::new(Layout::open(dir, tag.as_deref(), shown)),
            ImageRef::OciArchive { file, tag } => Box::new(OciArchive::open(file, tag.as_deref(), shown)?),
            ImageRef::DockerArchive { file, .. } => Box::new(DockerArchive::open(file, shown)?),
            ImageRef::Registry(r) => Box::new(self.client()?.open(r).map_err(|e| ImageError::Registry(Box::new(e)))?),
        })
    }

    /// Opens `loc` for writing. Where `loc` names no tag, layouts and
    /// oci-archives use `tag` and docker-archives `name:tag`; registries
    /// use the reference's tag, else `latest`.
    pub fn sink(
        &self,
        loc: &ImageRef,
        name: &str,
        tag: &str,
        push: PushOptions,
    ) -> Result<Box<dyn Sink + '_>, ImageError> {
        Ok(match loc {
            ImageRef::Layout { dir, tag: t } => Box::new(LayoutSink::new(
                dir,
                t.as_deref().unwrap_or(tag),
                self.reporter.clone(),
                self.opts.concurrency,
            )?),
            ImageRef::OciArchive { file, tag: t } => Box::new(OciArchiveSink::new(file, t.as_deref().unwrap_or(tag))?),
            ImageRef::DockerArchive { file, reference } => {
                Box::new(DockerArchiveSink::new(file, &reference.clone().unwrap_or_else(|| format!("{name}:{tag}"))))
            }
            ImageRef::Registry(r) => Box::new(RegistrySink::new(self.client()?, r.clone(), push)),
        })
    }
}

/// Writes everything under `src`'s root (an image or an index, with the
/// artifacts that refer to it) to `sink`.
pub fn copy(src: &dyn ImageSource, sink: &dyn Sink) -> Result<WriteReport, ImageError> {
    sink.write(&Content::of_root(src)?)
}
