//! Reading a Server-Sent Events stream (`GET /api/v1/tasks/{id}/events`): the answer's body
//! cut into events as it arrives.

use anyhow::{Context, Result};

/// One event: its `event:` name and its `data:` lines joined by newlines.
#[derive(Debug, PartialEq)]
pub struct SseEvent {
    pub name: String,
    pub data: String,
}

/// An open stream.
pub struct EventStream {
    response: reqwest::Response,
    parser: Parser,
    /// Method and URL, for error messages.
    request: String,
}

impl EventStream {
    pub(super) fn new(response: reqwest::Response, request: String) -> Self {
        Self {
            response,
            parser: Parser::default(),
            request,
        }
    }

    /// The next event; `None` once the master closed the stream. Cancel-safe: a chunk is
    /// taken into the parser in the same step it arrives, so dropping this future loses
    /// nothing.
    pub async fn next(&mut self) -> Result<Option<SseEvent>> {
        loop {
            if let Some(event) = self.parser.next_event() {
                return Ok(Some(event));
            }
            let chunk = self
                .response
                .chunk()
                .await
                .with_context(|| format!("reading the event stream of {}", self.request))?;
            match chunk {
                Some(bytes) => self.parser.feed(&bytes),
                None => return Ok(None),
            }
        }
    }
}

/// The text/event-stream format, as far as the master uses it: `event:` and `data:` fields,
/// `:` comments (its keep-alives), an empty line ending each event.
#[derive(Default)]
struct Parser {
    /// Bytes after the last complete line.
    partial: Vec<u8>,
    name: String,
    data: Vec<String>,
    ready: std::collections::VecDeque<SseEvent>,
}

impl Parser {
    fn feed(&mut self, bytes: &[u8]) {
        self.partial.extend_from_slice(bytes);
        while let Some(end) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            self.line(line.trim_end_matches(['\n', '\r']));
        }
    }

    fn line(&mut self, line: &str) {
        if line.is_empty() {
            self.dispatch();
            return;
        }
        if line.starts_with(':') {
            return;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => value.clone_into(&mut self.name),
            "data" => self.data.push(value.to_owned()),
            _ => {}
        }
    }

    /// An event without data is dropped, as the format says.
    fn dispatch(&mut self) {
        let name = std::mem::take(&mut self.name);
        if self.data.is_empty() {
            return;
        }
        let data = std::mem::take(&mut self.data).join("\n");
        let name = if name.is_empty() {
            "message".to_owned()
        } else {
            name
        };
        self.ready.push_back(SseEvent { name, data });
    }

    fn next_event(&mut self) -> Option<SseEvent> {
        self.ready.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(chunks: &[&str]) -> Vec<SseEvent> {
        let mut p = Parser::default();
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c.as_bytes());
            while let Some(e) = p.next_event() {
                out.push(e);
            }
        }
        out
    }

    fn event(name: &str, data: &str) -> SseEvent {
        SseEvent {
            name: name.into(),
            data: data.into(),
        }
    }

    #[test]
    fn events_split_across_chunks_and_keep_alives_are_skipped() {
        let got = events(&[
            "event: task\ndata: {\"a\"",
            ":1}\n\n:\n\nevent: status\r\n",
            "data: x\r\ndata: y\r\n\r\n",
        ]);
        assert_eq!(got, [event("task", "{\"a\":1}"), event("status", "x\ny")]);
    }

    #[test]
    fn an_event_without_data_is_dropped_and_a_nameless_one_is_a_message() {
        let got = events(&["event: lonely\n\ndata:1\n\n"]);
        assert_eq!(got, [event("message", "1")]);
    }
}
