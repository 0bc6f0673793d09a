//! Keyword arguments of `serve()` / `add_stream()` → [`StreamConfig`], in one function.
//!
//! Each accepted keyword is one line of the `match` in [`stream_config`].
//! `gpu` (pdum.rfb's GPU encoding, which the Rust hub does not have) is
//! accepted only with its "off" value and raises `NotImplementedError`
//! otherwise; unknown keywords raise `TypeError`.

use std::time::Duration;

use framehub::{AdaptConfig, ImageFormat, InputPolicy, Origins, StreamConfig};
use pyo3::exceptions::{PyNotImplementedError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyString};

use crate::auth;

/// Every keyword [`stream_config`] accepts (for the `TypeError` message).
pub(crate) const KEYWORDS: &[&str] = &[
    "fps",
    "quality",
    "max_inflight",
    "stats_interval",
    "event_queue",
    "record_events",
    "record_file",
    "authenticate",
    "token_cookie",
    "input",
    "image_format",
    "has_h264",
    "bitrate",
    "still_after",
    "max_viewers",
    "events_per_second",
    "event_burst",
    "idle_timeout",
    "adaptive",
    "gpu",
];

/// Builds a stream's settings from the keyword arguments `kwargs` of
/// `caller` (named in error messages). `event_loop` is the asyncio loop async
/// authenticators run on (None: the synchronous API).
///
/// Errors: `TypeError` for an unknown keyword or a value of the wrong type,
/// `ValueError` for a value out of range, `NotImplementedError` for `gpu`
/// with a value other than off.
pub(crate) fn stream_config(
    caller: &str,
    kwargs: Option<&Bound<'_, PyDict>>,
    event_loop: Option<&Py<PyAny>>,
) -> PyResult<StreamConfig> {
    let mut c = StreamConfig::default();
    let Some(kwargs) = kwargs else {
        return Ok(c);
    };
    for (key, v) in kwargs.iter() {
        let key: String = key.extract()?;
        let v = &v;
        let k = key.as_str();
        match k {
            "fps" => c.fps = opt(v, |v| non_negative(v, k, false))?,
            "quality" => c.quality = int_in(v, k, 1, 100)?,
            "max_inflight" => c.max_inflight = int_in(v, k, 1, 64)?,
            "stats_interval" => c.stats_interval = opt(v, |v| duration(v, k, false))?,
            "event_queue" => c.event_queue = int_in(v, k, 1, 1_000_000)?,
            "record_events" => c.record_events = boolean(v, k)?,
            "record_file" => {
                c.record_file = opt(v, |v| string(v, k))?.map(std::path::PathBuf::from)
            }
            "authenticate" => {
                c.authenticate = opt(v, |v| {
                    let py = v.py();
                    auth::authenticator(v, event_loop.map(|l| l.clone_ref(py)))
                })?
            }
            "token_cookie" => c.token_cookie = opt(v, |v| string(v, k))?,
            "input" => c.input = input_policy(v)?,
            "image_format" => c.preferred_image = image_format(v)?,
            "has_h264" => c.h264 = opt(v, |v| boolean(v, k))?.unwrap_or(false),
            "bitrate" => {
                c.bitrate = opt(v, |v| int_in(v, k, 10_000, 1_000_000_000))?.unwrap_or(c.bitrate)
            }
            "still_after" => c.still_after = opt(v, |v| duration(v, k, true))?,
            "max_viewers" => c.max_viewers = int_in(v, k, 1, 1_000_000)?,
            "events_per_second" => c.events_per_second = non_negative(v, k, false)?,
            "event_burst" => c.event_burst = non_negative(v, k, false)?,
            "idle_timeout" => c.idle_timeout = duration(v, k, false)?,
            "adaptive" => {
                c.adaptive = opt(v, |v| boolean(v, k))?.and_then(|on| on.then(AdaptConfig::default))
            }
            "gpu" => off_only(v, k, GPU_MISSING)?,
            _ => {
                return Err(PyTypeError::new_err(format!(
                    "{caller}() got an unexpected keyword argument '{key}' (stream settings: {})",
                    KEYWORDS.join(", ")
                )))
            }
        }
    }
    Ok(c)
}

/// `None` → `None`, anything else through `f`.
fn opt<'py, T>(
    v: &Bound<'py, PyAny>,
    f: impl FnOnce(&Bound<'py, PyAny>) -> PyResult<T>,
) -> PyResult<Option<T>> {
    if v.is_none() {
        Ok(None)
    } else {
        f(v).map(Some)
    }
}

fn type_error(name: &str, expected: &str, v: &Bound<'_, PyAny>) -> PyErr {
    PyTypeError::new_err(format!(
        "{name} must be {expected}, got {}",
        auth::type_name(v)
    ))
}

/// An `int` (not a `bool`) within `min..=max`.
fn int_in<T: TryFrom<i64>>(v: &Bound<'_, PyAny>, name: &str, min: i64, max: i64) -> PyResult<T> {
    if v.is_instance_of::<PyBool>() || !v.is_instance_of::<PyInt>() {
        return Err(type_error(name, "an int", v));
    }
    let n: i64 = v
        .extract()
        .map_err(|_| PyValueError::new_err(format!("{name} must be within {min}..={max}")))?;
    if n < min || n > max {
        return Err(PyValueError::new_err(format!(
            "{name} must be within {min}..={max}, got {n}"
        )));
    }
    T::try_from(n).map_err(|_| PyValueError::new_err(format!("{name} is out of range: {n}")))
}

/// A finite `int` or `float` (not a `bool`).
fn number(v: &Bound<'_, PyAny>, name: &str) -> PyResult<f64> {
    if v.is_instance_of::<PyBool>()
        || !(v.is_instance_of::<PyInt>() || v.is_instance_of::<PyFloat>())
    {
        return Err(type_error(name, "a number", v));
    }
    let x: f64 = v.extract()?;
    if !x.is_finite() {
        return Err(PyValueError::new_err(format!(
            "{name} must be finite, got {x}"
        )));
    }
    Ok(x)
}

/// A number `>= 0` (`> 0` unless `zero_ok`), at most 1e6.
fn non_negative(v: &Bound<'_, PyAny>, name: &str, zero_ok: bool) -> PyResult<f64> {
    let x = number(v, name)?;
    if x < 0.0 || (x == 0.0 && !zero_ok) || x > 1.0e6 {
        return Err(PyValueError::new_err(format!(
            "{name} must be {} and at most 1e6, got {x}",
            if zero_ok { ">= 0" } else { "> 0" }
        )));
    }
    Ok(x)
}

/// A duration in seconds.
fn duration(v: &Bound<'_, PyAny>, name: &str, zero_ok: bool) -> PyResult<Duration> {
    non_negative(v, name, zero_ok).map(Duration::from_secs_f64)
}

fn boolean(v: &Bound<'_, PyAny>, name: &str) -> PyResult<bool> {
    v.cast::<PyBool>()
        .map(|b| b.is_true())
        .map_err(|_| type_error(name, "a bool", v))
}

fn string(v: &Bound<'_, PyAny>, name: &str) -> PyResult<String> {
    if !v.is_instance_of::<PyString>() {
        return Err(type_error(name, "a str", v));
    }
    v.extract()
}

fn input_policy(v: &Bound<'_, PyAny>) -> PyResult<InputPolicy> {
    match string(v, "input")?.as_str() {
        "all" => Ok(InputPolicy::All),
        "first" => Ok(InputPolicy::First),
        "none" => Ok(InputPolicy::None),
        other => Err(PyValueError::new_err(format!(
            "input must be 'all', 'first' or 'none', got '{other}'"
        ))),
    }
}

fn image_format(v: &Bound<'_, PyAny>) -> PyResult<ImageFormat> {
    let s = string(v, "image_format")?;
    match s.as_str() {
        "jpeg" | "image/jpeg" => Ok(ImageFormat::Jpeg),
        "png" | "image/png" => Ok(ImageFormat::Png),
        other => Err(PyValueError::new_err(format!(
            "image_format must be 'jpeg' or 'png', got '{other}'"
        ))),
    }
}

/// Why `gpu=True` is refused: the hub encodes on the CPU only
/// (libjpeg-turbo, the `png` crate, OpenH264); it has no GPU encoder.
const GPU_MISSING: &str = "GPU encoding is not available in framehub: it encodes on the CPU \
     (libjpeg-turbo, png, OpenH264)";

/// A pdum.rfb setting the hub does not implement: `None` and `False` are
/// accepted (and change nothing); anything else raises
/// `NotImplementedError` with `why`.
fn off_only(v: &Bound<'_, PyAny>, name: &str, why: &str) -> PyResult<()> {
    let off = v.is_none() || v.cast::<PyBool>().is_ok_and(|b| !b.is_true());
    if off {
        Ok(())
    } else {
        Err(PyNotImplementedError::new_err(format!(
            "{name}={}: {why} ({name} accepts only None or False)",
            v.repr().map_or_else(|_| "?".to_string(), |r| r.to_string())
        )))
    }
}

/// The hub's `origins` setting: `None` → same-origin pages and, on a
/// loopback address, loopback pages; `"*"` → any page; a list of origins
/// (`"https://app.example.com"`) → those plus same-origin pages.
///
/// Errors: `TypeError` for anything else.
/// `nats=` of `serve_server`: None (a lone hub), the servers' URLs
/// (`"nats://a:4222,nats://b:4222"` or a list of them), or a dict with
/// `urls` and any of `hub_id`, `credentials_file`, `token`, `tls_required`,
/// `root_certificates`.
///
/// Errors: `TypeError` for anything else or a key of another type,
/// `ValueError` for an unknown key or no URL.
pub(crate) fn nats(v: Option<&Bound<'_, PyAny>>) -> PyResult<Option<framehub::NatsConfig>> {
    let Some(v) = v.filter(|v| !v.is_none()) else {
        return Ok(None);
    };
    let expected = "None, 'nats://host:port[,…]', a list of URLs or a dict with 'urls'";
    let urls_of = |u: &Bound<'_, PyAny>| -> PyResult<String> {
        if let Ok(s) = u.cast::<PyString>() {
            return Ok(s.to_cow()?.into_owned());
        }
        let mut list = Vec::new();
        for item in u.try_iter().map_err(|_| type_error("nats", expected, u))? {
            list.push(string(&item?, "each NATS URL")?);
        }
        Ok(list.join(","))
    };
    let mut cfg = if let Ok(d) = v.cast::<pyo3::types::PyDict>() {
        let urls = d
            .get_item("urls")?
            .ok_or_else(|| PyValueError::new_err("nats: the dict needs 'urls'"))?;
        let mut cfg = framehub::NatsConfig::new(&urls_of(&urls)?);
        for (k, val) in d.iter() {
            let key = string(&k, "each key of nats")?;
            let text = |what: &str| -> PyResult<Option<String>> {
                if val.is_none() {
                    Ok(None)
                } else {
                    string(&val, what).map(Some)
                }
            };
            match key.as_str() {
                "urls" => {}
                "hub_id" => cfg.hub_id = text("nats hub_id")?,
                "credentials_file" => cfg.credentials_file = text("nats credentials_file")?.map(Into::into),
                "token" => cfg.token = text("nats token")?,
                "root_certificates" => cfg.root_certificates = text("nats root_certificates")?.map(Into::into),
                "tls_required" => cfg.tls_required = val.extract::<bool>()?,
                other => {
                    return Err(PyValueError::new_err(format!(
                        "nats: unknown key '{other}' (urls, hub_id, credentials_file, token, tls_required, root_certificates)"
                    )))
                }
            }
        }
        cfg
    } else {
        framehub::NatsConfig::new(&urls_of(v)?)
    };
    if cfg.urls.is_empty() {
        return Err(PyValueError::new_err("nats: no server URL"));
    }
    cfg.urls.retain(|u| !u.is_empty());
    Ok(Some(cfg))
}

pub(crate) fn origins(v: Option<&Bound<'_, PyAny>>) -> PyResult<Origins> {
    let Some(v) = v.filter(|v| !v.is_none()) else {
        return Ok(Origins::default());
    };
    let expected = "None, '*' or a list of origins such as ['https://app.example.com']";
    if let Ok(s) = v.cast::<PyString>() {
        return match s.to_cow()?.as_ref() {
            "*" => Ok(Origins::Any),
            other => Err(PyTypeError::new_err(format!(
                "origins must be {expected}, got the string '{other}' (put one origin in a list)"
            ))),
        };
    }
    let mut list = Vec::new();
    for item in v
        .try_iter()
        .map_err(|_| type_error("origins", expected, v))?
    {
        let item = item?;
        let origin = string(&item, "each origin")?;
        if origin == "*" {
            return Ok(Origins::Any);
        }
        if !origin.contains("://") {
            return Err(PyValueError::new_err(format!(
                "an origin is 'scheme://host[:port]', got '{origin}'"
            )));
        }
        list.push(origin);
    }
    Ok(Origins::List(list))
}
