//! Sending a module's outbound request under its [`OutboundPolicy`]: the
//! `wasi:http` hook every `outgoing-handler.handle` goes through.
//!
//! In order: the capability (the embedding host's policy for the call), the
//! allow-list, DNS resolution, the address check of every resolved address,
//! a connection to exactly a checked address (re-checked on the socket's
//! peer address), TLS with the webpki roots (verification skipped only for
//! hosts an administrator listed), then HTTP/1.1. The whole request runs
//! under one deadline and the response body is capped. A refusal fails the
//! request with `internal-error("outbound request denied: ...")`, which the
//! guest SDK reports as `HttpError::Denied`; the reason is also logged for
//! the module's developer.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use super::http::{OutboundPolicy, Target, DENIED_PREFIX};
use super::{Capabilities, LogLevel};

/// The `wasi:http` hooks of one call: every request goes through
/// [`send`] with the call's capabilities.
pub(crate) struct OutboundHooks {
    pub(crate) caps: Arc<dyn Capabilities>,
}

type IoFuture = Box<dyn Future<Output = Result<(), Error>> + Send>;

impl WasiHttpHooks for OutboundHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: IoFuture,
    ) -> Box<dyn Future<Output = Result<(http::Response<WasiBody>, IoFuture), Error>> + Send> {
        let caps = self.caps.clone();
        Box::new(async move {
            let response = send(caps.as_ref(), request, options).await?;
            Ok((response, Box::new(async { Ok(()) }) as IoFuture))
        })
    }
}

/// A refusal: logged for the module's developer, and the error the guest sees.
fn denied(caps: &dyn Capabilities, reason: &str) -> Error {
    caps.log(LogLevel::Warn, &format!("{DENIED_PREFIX}{reason}"));
    Error::InternalError(Some(format!("{DENIED_PREFIX}{reason}")))
}

/// Send `request` if the call's policy allows it.
async fn send(
    caps: &dyn Capabilities,
    request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
) -> Result<http::Response<WasiBody>, Error> {
    let policy = caps
        .outbound_http()
        .await
        .map_err(|reason| denied(caps, &reason))?;
    send_under(caps, &policy, request, options).await
}

/// Send `request` under `policy`.
async fn send_under(
    caps: &dyn Capabilities,
    policy: &OutboundPolicy,
    mut request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
) -> Result<http::Response<WasiBody>, Error> {
    let target = Target::from_uri(request.uri()).map_err(|reason| denied(caps, &reason))?;
    if !policy.allows(&target) {
        let allowed: Vec<&str> = policy.allowed.iter().map(|p| p.as_str()).collect();
        return Err(denied(
            caps,
            &format!(
                "{target} is not in the module's allowed_outbound_hosts ({})",
                if allowed.is_empty() {
                    "none".to_string()
                } else {
                    allowed.join(", ")
                }
            ),
        ));
    }
    let limits = policy.limits;
    let deadline = Instant::now() + limits.request_timeout;
    let connect_timeout = options
        .and_then(|o| o.connect_timeout)
        .map_or(limits.connect_timeout, |t| t.min(limits.connect_timeout));
    let first_byte_timeout = options
        .and_then(|o| o.first_byte_timeout)
        .unwrap_or(limits.request_timeout);

    // The request line carries only the path: the authority is in `Host`.
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    *request.uri_mut() = http::Uri::builder()
        .path_and_query(path)
        .build()
        .map_err(|_| Error::HttpRequestUriInvalid)?;

    let head = async {
        let stream = tokio::time::timeout(connect_timeout, connect(caps, policy, &target))
            .await
            .map_err(|_| Error::ConnectionTimeout)??;
        let io: Box<dyn Stream> = if target.scheme == "https" {
            Box::new(tls(policy, &target, stream).await?)
        } else {
            Box::new(stream)
        };
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
        // The connection ends with the response body, or at the deadline.
        tokio::spawn(async move {
            let _ = tokio::time::timeout_at(deadline, conn).await;
        });
        tokio::time::timeout(first_byte_timeout, sender.send_request(request))
            .await
            .map_err(|_| Error::ConnectionReadTimeout)?
            .map_err(Error::from)
    };
    let response = tokio::time::timeout_at(deadline, head)
        .await
        .map_err(|_| Error::HttpResponseTimeout)??;

    let max = limits.max_response_bytes;
    let declared = response
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(len) = declared.filter(|len| *len > max) {
        caps.log(
            LogLevel::Warn,
            &format!("{target}: response of {len} bytes is over the cap of {max} bytes"),
        );
        return Err(Error::HttpResponseBodySize(Some(len)));
    }
    Ok(response.map(|incoming| {
        CappedBody {
            inner: incoming,
            remaining: max,
            deadline: Box::pin(tokio::time::sleep_until(deadline)),
        }
        .boxed_unsync()
    }))
}

/// Resolve `target` and connect to the first address the policy allows.
async fn connect(
    caps: &dyn Capabilities,
    policy: &OutboundPolicy,
    target: &Target,
) -> Result<TcpStream, Error> {
    let addresses: Vec<SocketAddr> = match target.ip() {
        Some(ip) => vec![SocketAddr::new(ip, target.port)],
        None => tokio::net::lookup_host((target.host.as_str(), target.port))
            .await
            .map_err(|e| Error::DnsError {
                rcode: Some(e.to_string()),
                info_code: None,
            })?
            .collect(),
    };
    if addresses.is_empty() {
        return Err(Error::DestinationNotFound);
    }
    let mut refusal = None;
    let mut last_error = None;
    for address in addresses {
        if let Err(reason) = policy.check_address(target, address.ip().to_canonical()) {
            refusal.get_or_insert(reason);
            continue;
        }
        match TcpStream::connect(address).await {
            Ok(stream) => {
                // The socket's peer is what was checked; say so for certain.
                let peer = stream.peer_addr().map_err(Error::Connect)?;
                policy
                    .check_address(target, peer.ip().to_canonical())
                    .map_err(|reason| denied(caps, &reason))?;
                return Ok(stream);
            }
            Err(e) => last_error = Some(e),
        }
    }
    match (last_error, refusal) {
        (Some(e), _) => Err(Error::Connect(e)),
        (None, Some(reason)) => Err(denied(caps, &reason)),
        (None, None) => Err(Error::DestinationNotFound),
    }
}

trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static {}
impl<T> Stream for T where T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static {}

/// TLS over `stream`: verified against the webpki roots unless an
/// administrator turned verification off for this host.
async fn tls(
    policy: &OutboundPolicy,
    target: &Target,
    stream: TcpStream,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, Error> {
    use rustls::pki_types::ServerName;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::InternalError(Some(e.to_string())))?;
    let config = if policy.skips_tls_verification(target) {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(UnverifiedCertificate(provider)))
            .with_no_client_auth()
    } else {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.into(),
        };
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    let name = match target.ip() {
        Some(ip) => ServerName::from(ip),
        None => ServerName::try_from(target.host.clone())?,
    };
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, stream)
        .await
        .map_err(Error::Tls)
}

/// Accepts any certificate, but still checks that the server holds the key
/// of the one it presented (the handshake signature): an administrator's
/// opt-out for a host with a self-signed certificate.
#[derive(Debug)]
struct UnverifiedCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for UnverifiedCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A response body that fails once it grows past `max` bytes or runs past
/// the request's deadline.
struct CappedBody {
    inner: hyper::body::Incoming,
    remaining: u64,
    deadline: Pin<Box<Sleep>>,
}

impl Body for CappedBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let len = data.len() as u64;
                    if len > this.remaining {
                        return Poll::Ready(Some(Err(Error::HttpResponseBodySize(None))));
                    }
                    this.remaining -= len;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Error::from(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Error::HttpResponseTimeout))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::http::HostPattern;
    use crate::host::NoCapabilities;
    use http_body_util::{BodyExt, Empty};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn request(url: &str) -> http::Request<WasiBody> {
        let uri: http::Uri = url.parse().unwrap();
        let host = uri.authority().unwrap().to_string();
        http::Request::builder()
            .uri(uri)
            .header(http::header::HOST, host)
            .body(Empty::<Bytes>::new().map_err(|e| match e {}).boxed_unsync())
            .unwrap()
    }

    fn patterns(list: &[&str]) -> Vec<HostPattern> {
        list.iter()
            .map(|p| HostPattern::parse(p).unwrap())
            .collect()
    }

    /// A TLS server on 127.0.0.1 with a self-signed certificate for that
    /// address, answering every connection with `200 ok`.
    async fn self_signed_server() -> SocketAddr {
        let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut buf = [0u8; 4096];
                    let _ = tls.read(&mut buf).await;
                    let _ = tls
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                        )
                        .await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        address
    }

    #[tokio::test]
    async fn a_self_signed_certificate_is_refused_unless_an_admin_skips_verification_for_the_host()
    {
        let address = self_signed_server().await;
        let url = format!("https://{address}/");
        let mut policy = OutboundPolicy {
            allowed: patterns(&["https://127.0.0.1:*"]),
            private_hosts: patterns(&["https://127.0.0.1:*"]),
            // Another host's opt-out changes nothing here.
            insecure_tls_hosts: patterns(&["https://pve.lan:8006"]),
            ..Default::default()
        };
        let e = send_under(&NoCapabilities, &policy, request(&url), None)
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Tls(_)), "{e}");
        assert!(e.to_string().contains("certificate"), "{e}");

        policy.insecure_tls_hosts = patterns(&["https://127.0.0.1:*"]);
        let response = send_under(&NoCapabilities, &policy, request(&url), None)
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"ok");
    }

    #[tokio::test]
    async fn without_a_policy_from_the_host_nothing_is_sent() {
        let e = send(&NoCapabilities, request("https://example.com/"), None)
            .await
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("outbound request denied: no outbound HTTP in this call"),
            "{e}"
        );
    }
}
