// OTLP JSON lines -> the span rows and wanted-attribute rows of `otlp.spans_from_rows`, with
// simdjson's On-Demand API: only ids, times, status, name, exception events and the wanted
// attribute keys are looked at; everything else is skipped unparsed.
//
// The result is two Arrow struct arrays, handed over through the Arrow C data interface
// (PyCapsules "arrow_schema" / "arrow_array"), which polars imports. Whenever the input is not
// what this code is sure to read exactly as the polars path does (a malformed line, a key
// spelled with escapes, a value of an unexpected type, a repeated wanted key, a NUL), it
// returns None and the caller decodes the batch with polars: results never depend on which
// path ran.

#include "rows.h"

#include <simdjson.h>

#include <charconv>
#include <deque>

namespace od = simdjson::ondemand;

namespace {

// ---------------------------------------------------------------------------------------------
// Values as the polars path reads them

template <class T> T got(simdjson::simdjson_result<T> &&result) {
  T value;
  if (std::move(result).get(value)) throw Unsure{};
  return value;
}

// A structural key (a field name of the OTLP shape), as written: escapes make it unsure.
std::string_view raw_key(od::field &field) {
  const char *start = field.key().raw();
  const char *end = start;
  while (*end != '"') {
    if (*end == '\\') throw Unsure{};
    ++end;
  }
  return {start, size_t(end - start)};
}

// The polars path fails on a line nested about 1,000 levels deep, wherever the nesting is (and
// the line then goes the slow way). On-Demand skips what it is not asked for without counting
// its depth, so each value left unread is measured here: its brackets, with those in its
// strings, bound its depth, and what is read around it is never deeper than READ_DEPTH.
constexpr size_t DEPTH_LIMIT = 900, READ_DEPTH = 16;

void measure(od::value value) {
  std::string_view raw = got(value.type()) == od::json_type::array
                             ? got(got(value.get_array()).raw_json())
                             : got(got(value.get_object()).raw_json());
  size_t openers = 0;
  for (char c : raw) openers += (c == '[') | (c == '{');
  if (READ_DEPTH + openers >= DEPTH_LIMIT) throw Unsure{};
}

// An object's scalar fields (a prompt's text, most often) are passed over without a look.
void skip(od::value value) {
  od::json_type type = got(value.type());
  if (type == od::json_type::array) return measure(value);
  if (type != od::json_type::object) return;
  for (auto result : got(value.get_object())) {
    od::field field = got(std::move(result));
    od::json_type inner = got(field.value().type());
    if (inner == od::json_type::array || inner == od::json_type::object) measure(field.value());
  }
}

bool is_integer(std::string_view s) {
  if (s.empty()) return false;
  size_t i = s[0] == '-' ? 1 : 0;
  if (i == s.size()) return false;
  for (size_t j = i; j < s.size(); ++j)
    if (s[j] < '0' || s[j] > '9') return false;
  return !(s.size() - i > 1 && s[i] == '0');
}

// As `otlp.ids_are_hex` checks an id: then `normalise_id` may skip its base64 branch.
bool hex_id(std::string_view id, size_t length) {
  if (id.empty()) return true;
  if (id.size() != length) return false;
  bool hex = true;  // no early exit: the loop is then one the compiler vectorises
  for (char c : id) hex &= (c >= '0' && c <= '9') | (c >= 'a' && c <= 'f');
  return hex;
}

// A double as Rust prints it (polars' text of a float): the shortest digits that read back,
// written out without an exponent (1e21 -> 1000000000000000000000, 1e-5 -> 0.00001).
std::string fixed(double number) {
  char buffer[64];
  auto [end, error] = std::to_chars(buffer, buffer + sizeof buffer, number,
                                    std::chars_format::scientific);
  if (error != std::errc()) throw Unsure{};
  std::string_view text(buffer, size_t(end - buffer));
  std::string out;
  if (text[0] == '-') {
    out = "-";
    text.remove_prefix(1);
  }
  size_t e = text.find('e');
  std::string digits(text.substr(0, e));
  if (digits.size() > 1) digits.erase(1, 1);  // the point after the first digit
  int exponent = std::stoi(std::string(text.substr(e + 1)));
  int n = int(digits.size());
  if (exponent >= n - 1) {
    out += digits + std::string(size_t(exponent - (n - 1)), '0');
  } else if (exponent < 0) {
    out += "0." + std::string(size_t(-exponent - 1), '0') + digits;
  } else {
    out += digits.substr(0, size_t(exponent + 1)) + "." + digits.substr(size_t(exponent + 1));
  }
  return out;
}

// A JSON scalar as polars decodes it into a String: strings unescaped, integers as written,
// other numbers as the shortest text that reads back (fixed notation, as Rust prints f64),
// booleans as true/false, null as absent. Objects and arrays: unsure. The text is a view of
// the input where it is written as it reads, else of `kept`.
std::string_view plain_string(od::value value);
bool scalar_text(od::value value, std::string_view &out, Kept &kept) {
  switch (got(value.type())) {
    case od::json_type::string: {
      out = plain_string(value);
      if (out.data() != nullptr) return true;  // simdjson's first stage refused any raw NUL
      std::string_view text = got(value.get_string());
      if (text.find('\0') != std::string_view::npos) throw Unsure{};
      out = kept.keep(text);  // the parser's string buffer is reused by the next document
      return true;
    }
    case od::json_type::number: {
      std::string_view token = value.raw_json_token();
      while (!token.empty() && (token.back() == ' ' || token.back() == '\t' ||
                                token.back() == '\n' || token.back() == '\r'))
        token.remove_suffix(1);
      if (is_integer(token)) {
        if (token == "-0") throw Unsure{};
        out = token;
        return true;
      }
      out = kept.keep(fixed(got(value.get_double())));
      return true;
    }
    case od::json_type::boolean:
      out = got(value.get_bool()) ? "true" : "false";
      return true;
    case od::json_type::null:
      return false;
    default:
      throw Unsure{};
  }
}

bool plain_ascii(std::string_view s) {
  for (char c : s)
    if (uint8_t(c) < 0x20 || uint8_t(c) >= 0x7f || c == '"' || c == '\\') return false;
  return true;
}

// A string written without escapes, as a view of the input (most keys are); a null view when
// the value is anything else, to be read by `scalar_text`. simdjson's first stage has already
// checked the document's UTF-8 and that no control character is left unescaped.
std::string_view plain_string(od::value value) {
  std::string_view token = value.raw_json_token();
  while (!token.empty() && (token.back() == ' ' || token.back() == '\t' ||
                            token.back() == '\n' || token.back() == '\r'))
    token.remove_suffix(1);
  if (token.size() < 2 || token.front() != '"' || token.back() != '"') return {};
  token = token.substr(1, token.size() - 2);
  if (token.find('\\') != std::string_view::npos) return {};
  return token;
}

// The first scalar of an AnyValue object, in polars' coalesce order.
const char *const SCALARS[] = {"stringValue", "intValue", "doubleValue", "boolValue",
                               "bytesValue"};

int scalar_rank(std::string_view key) {
  for (int i = 0; i < 5; ++i)
    if (key == SCALARS[i]) return i;
  return -1;
}

// AnyValue -> Value. At the top (an attribute's value) the text is trimmed, "" is absent, and
// arrays of scalars are read (tags) as items and JSON text; key-value lists are left to polars.
// Inside an array (`top` false) it is the first scalar as it is, untrimmed.
Value any_value(od::value value, bool top, Kept &kept) {
  Value out;
  if (got(value.type()) == od::json_type::null) return out;
  od::object object = got(value.get_object());
  int best = 99;
  std::string_view text;
  bool seen[5] = {false, false, false, false, false};
  for (auto result : object) {
    od::field field = got(std::move(result));
    std::string_view key = raw_key(field);
    int rank = scalar_rank(key);
    if (rank >= 0) {
      if (seen[rank]) throw Unsure{};
      seen[rank] = true;
      if (scalar_text(field.value(), text, kept) && rank < best) {
        best = rank;
        out.text = text;
      }
    } else if (key == "arrayValue") {
      if (!top) throw Unsure{};
      od::value inner = field.value();
      if (got(inner.type()) == od::json_type::null) continue;
      od::object holder = got(inner.get_object());
      for (auto part : holder) {
        od::field values = got(std::move(part));
        if (raw_key(values) != "values") {
          skip(values.value());
          continue;
        }
        if (out.list) throw Unsure{};
        out.list = true;
        od::value list = values.value();
        if (got(list.type()) == od::json_type::null) {
          out.list = false;
          continue;
        }
        for (auto item : got(list.get_array())) {
          od::value element = got(std::move(item));
          Value scalar = any_value(element, false, kept);
          out.items.emplace_back(scalar.known, scalar.text);
        }
      }
    } else if (key == "kvlistValue") {
      throw Unsure{};
    } else {
      skip(field.value());
    }
  }
  out.known = best < 99;
  if (!top) return out;
  if (out.known) {
    out.text = stripped(out.text, is_space);
    out.known = !out.text.empty();
  } else if (out.list) {
    // The JSON text of the items, as polars encodes it: plain strings only, to be sure.
    out.nested = true;
    std::string json = "[";
    for (size_t i = 0; i < out.items.size(); ++i) {
      auto &[known, item] = out.items[i];
      if (i) json += ',';
      if (!known) {
        json += "null";
      } else {
        if (!plain_ascii(item)) throw Unsure{};
        json += '"';
        json += item;
        json += '"';
      }
    }
    json += ']';
    out.text = kept.keep(stripped(json, is_space));
    out.known = true;
  }
  if (!out.known && out.list) out.nested = true;
  return out;
}

// The wanted attributes of an `attributes` array, in order, appended to `out`; a key
// repeated among those appended: unsure. `number` gives a key's number, or -1 when it is not
// wanted.
template <class Number>
void attributes(od::value value, Number &&number, std::vector<std::pair<uint32_t, Attribute>> &out,
                uint32_t at, Kept &kept, bool top = true) {
  if (got(value.type()) == od::json_type::null) return;
  size_t first = out.size();
  for (auto entry : got(value.get_array())) {
    od::value item = got(std::move(entry));
    if (got(item.type()) == od::json_type::null) continue;
    od::object object = got(item.get_object());
    bool has_key = false, has_value = false;
    int key = -1;
    Value parsed;
    // The key may come after the value: read the value only once the key is known wanted.
    // On-Demand reads forward, so a value before its key is parsed whatever the key.
    for (auto result : object) {
      od::field field = got(std::move(result));
      std::string_view name = raw_key(field);
      if (name == "key") {
        if (has_key) throw Unsure{};
        has_key = true;
        std::string_view text = plain_string(field.value());
        if (text.data() == nullptr && !scalar_text(field.value(), text, kept)) throw Unsure{};
        key = number(text);
      } else if (name == "value") {
        if (has_value) throw Unsure{};
        has_value = true;
        if (has_key && key < 0) {
          skip(field.value());
          continue;
        }
        parsed = any_value(field.value(), top, kept);
      } else {
        skip(field.value());
      }
    }
    if (!has_key || key < 0) continue;
    for (size_t i = first; i < out.size(); ++i)
      if (out[i].second.key == uint32_t(key)) throw Unsure{};
    out.emplace_back(at, Attribute{uint32_t(key), std::move(parsed)});
  }
}

// An exception event's (seen, message): the first exception.message of the span's events.
void events(od::value value, bool &seen, Value &message, bool &has_message, Kept &kept) {
  if (got(value.type()) == od::json_type::null) return;
  auto exception_message = [](std::string_view key) { return key == "exception.message" ? 0 : -1; };
  std::vector<std::pair<uint32_t, Attribute>> found;
  for (auto entry : got(value.get_array())) {
    od::value event = got(std::move(entry));
    if (got(event.type()) == od::json_type::null) continue;
    od::object object = got(event.get_object());
    bool exception = false, named = false, read = false;
    found.clear();
    for (auto result : object) {
      od::field field = got(std::move(result));
      std::string_view key = raw_key(field);
      if (key == "name") {
        if (named) throw Unsure{};
        // Events are read whatever the batch; the polars path decodes them only in a batch
        // where `"exception"` is written as such. So the name counts only as written, and a
        // name spelled with escapes is unsure.
        std::string_view raw = field.value().raw_json_token();
        while (!raw.empty() && (raw.back() == ' ' || raw.back() == '\t' || raw.back() == '\n' ||
                                raw.back() == '\r'))
          raw.remove_suffix(1);
        if (raw.find('\\') != std::string_view::npos || raw.empty() || raw[0] == '{' ||
            raw[0] == '[')
          throw Unsure{};
        named = true;
        exception = raw == "\"exception\"";
      } else if (key == "attributes") {
        if (read) throw Unsure{};
        read = true;
        attributes(field.value(), exception_message, found, 0, kept, false);
      } else {
        skip(field.value());
      }
    }
    if (!named || !exception) continue;
    seen = true;
    if (!has_message && !found.empty()) {
      has_message = true;  // the first, as it is (a later one does not replace an absent one)
      message = std::move(found[0].second.value);
    }
  }
}

// The span fields read as text, by name; their names differ in length.
int span_field(std::string_view key) {
  static const std::string_view names[] = {"traceId", "spanId", "parentSpanId", "name",
                                           "startTimeUnixNano", "endTimeUnixNano"};
  int slot;
  switch (key.size()) {
    case 7: slot = 0; break;
    case 6: slot = 1; break;
    case 12: slot = 2; break;
    case 4: slot = 3; break;
    case 17: slot = 4; break;
    case 15: slot = 5; break;
    default: return -1;
  }
  return key == names[slot] ? slot : -1;
}

void span(od::value value, Batch &out, Keys &wanted) {
  od::object object = got(value.get_object());
  bool seen[9] = {};
  bool status_code = false, status_message = false, exception = false, has_message = false;
  std::string_view code, message;
  Value exception_message;
  Text *texts[] = {&out.trace_id, &out.span_id, &out.parent, &out.name, &out.start, &out.end};
  std::string_view values[6];
  bool known[6] = {};
  uint32_t at = out.spans_written;  // its own attributes go straight into `found`
  size_t first = out.found.size();
  auto number = [&wanted](std::string_view key) { return wanted.find(key); };
  for (auto result : object) {
    od::field field = got(std::move(result));
    std::string_view key = raw_key(field);
    int slot = span_field(key);
    if (slot >= 0) {
      if (seen[slot]) throw Unsure{};
      seen[slot] = true;
      known[slot] = scalar_text(field.value(), values[slot], out.kept);
    } else if (key == "attributes") {
      if (seen[6]) throw Unsure{};
      seen[6] = true;
      attributes(field.value(), number, out.found, at, out.kept);
    } else if (key == "status") {
      if (seen[7]) throw Unsure{};
      seen[7] = true;
      od::value status = field.value();
      if (got(status.type()) == od::json_type::null) continue;
      bool seen_code = false, seen_message = false;
      for (auto part : got(status.get_object())) {
        od::field f = got(std::move(part));
        std::string_view k = raw_key(f);
        if (k == "code") {
          if (seen_code) throw Unsure{};
          seen_code = true;
          status_code = scalar_text(f.value(), code, out.kept);
        } else if (k == "message") {
          if (seen_message) throw Unsure{};
          seen_message = true;
          status_message = scalar_text(f.value(), message, out.kept);
        } else {
          skip(f.value());
        }
      }
    } else if (key == "events") {
      if (seen[8]) throw Unsure{};
      seen[8] = true;
      events(field.value(), exception, exception_message, has_message, out.kept);
    } else {
      skip(field.value());
    }
  }
  for (int i = 0; i < 6; ++i) known[i] ? texts[i]->push(values[i]) : texts[i]->push_null();
  for (int i = 0; i < 3; ++i)
    if (known[i] && !hex_id(values[i], i == 0 ? 32 : 16)) out.ids_hex = false;
  status_code ? out.code.push(code) : out.code.push_null();
  status_message ? out.message.push(message) : out.message.push_null();
  out.exception.values.push(exception);
  if (has_message && exception_message.known) {
    out.exception_message.push(exception_message.text);
  } else {
    out.exception_message.push_null();
  }
  out.spans_written++;
  out.own_rows.emplace_back(first, out.found.size());
}

// A resource's spans, then its wanted attributes for each of them.
void resource_spans(od::value value, Batch &out, Keys &wanted) {
  if (got(value.type()) == od::json_type::null) return;
  od::object object = got(value.get_object());
  uint32_t first = out.spans_written;
  std::vector<std::pair<uint32_t, Attribute>> shared;
  bool seen[3] = {};
  for (auto result : object) {
    od::field field = got(std::move(result));
    std::string_view key = raw_key(field);
    if (key == "resource") {
      if (seen[0]) throw Unsure{};
      seen[0] = true;
      od::value resource = field.value();
      if (got(resource.type()) == od::json_type::null) continue;
      bool read = false;
      for (auto part : got(resource.get_object())) {
        od::field f = got(std::move(part));
        if (raw_key(f) != "attributes") {
          skip(f.value());
          continue;
        }
        if (read) throw Unsure{};
        read = true;
        attributes(f.value(), [&wanted](std::string_view k) { return wanted.find(k); }, shared,
                   0, out.kept);
      }
    } else if (key == "scopeSpans" || key == "instrumentationLibrarySpans") {
      int which = key == "scopeSpans" ? 1 : 2;
      if (seen[which]) throw Unsure{};
      seen[which] = true;
      od::value scopes = field.value();
      if (got(scopes.type()) == od::json_type::null) continue;
      for (auto entry : got(scopes.get_array())) {
        od::value scope = got(std::move(entry));
        if (got(scope.type()) == od::json_type::null) continue;
        bool read = false;
        for (auto part : got(scope.get_object())) {
          od::field f = got(std::move(part));
          if (raw_key(f) != "spans") {
            skip(f.value());
            continue;
          }
          if (read) throw Unsure{};
          read = true;
          od::value list = f.value();
          if (got(list.type()) == od::json_type::null) continue;
          for (auto one : got(list.get_array())) {
            od::value s = got(std::move(one));
            if (got(s.type()) == od::json_type::null) continue;
            span(s, out, wanted);
          }
        }
      }
    } else {
      skip(field.value());
    }
  }
  // Both scope lists in one resource: the polars path orders all scopeSpans first.
  if (seen[1] && seen[2]) throw Unsure{};
  for (uint32_t at = first; at < out.spans_written; ++at) {
    out.choose(wanted, at, out.own_rows[at].first, out.own_rows[at].second, &shared);
    for (auto &a : shared) out.shared.emplace_back(at, a.second);
  }
}

void document(od::document &doc, Batch &out, Keys &wanted) {
  od::object root = got(doc.get_object());
  bool found = false;
  for (auto result : root) {
    od::field field = got(std::move(result));
    if (raw_key(field) != "resourceSpans") {
      skip(field.value());
      continue;
    }
    if (found) throw Unsure{};
    found = true;
    od::value list = field.value();
    if (got(list.type()) == od::json_type::null) throw Unsure{};  // not traces: polars names it
    for (auto entry : got(list.get_array())) {
      resource_spans(got(std::move(entry)), out, wanted);
    }
  }
  if (!found) throw Unsure{};
}

bool blank(const char *p, const char *end) {
  for (; p < end; ++p)
    if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n') return false;
  return true;
}

// extract(blocks: list of bytes-like, keys, prefixes, chains, tags, objects, text_keys)
//   -> ((schema, array) of spans, (schema, array) of attributes, nested text count | None,
//       whether every id is lowercase hex) | None
// `blocks`: OTLP JSON documents one per line, as the polars path splits them (blank lines are
// skipped; a document across lines, or two on one, is malformed there, and unsure here). Each
// block holds whole lines; a batch is several blocks as they were read, not joined into one
// (that join was a copy of every byte). Each field is chosen here from its chain
// (`Batch::chosen_rows`), unless an attribute of the batch is a JSON object whose keys may take
// part: then every attribute is a row, and the count is None.
PyObject *extract(PyObject *, PyObject *args) {
  PyObject *blocks, *keys, *prefixes, *chains, *tags, *objects, *text_keys;
  if (!PyArg_ParseTuple(args, "O!OOOOOO", &PyList_Type, &blocks, &keys, &prefixes, &chains,
                        &tags, &objects, &text_keys))
    return nullptr;
  std::vector<Py_buffer> buffers;
  auto release = [&buffers] {
    for (Py_buffer &buffer : buffers) PyBuffer_Release(&buffer);
  };
  for (Py_ssize_t i = 0; i < PyList_GET_SIZE(blocks); ++i) {
    Py_buffer buffer;
    if (PyObject_GetBuffer(PyList_GET_ITEM(blocks, i), &buffer, PyBUF_SIMPLE) < 0) {
      release();
      return nullptr;
    }
    buffers.push_back(buffer);
  }
  std::unique_ptr<Fields> fields;
  std::unique_ptr<Keys> wanted;
  try {
    fields = make_fields(chains, tags, objects, text_keys);
    wanted = std::make_unique<Keys>(strings(keys), strings(prefixes), fields.get());
  } catch (const std::runtime_error &) {
    release();
    return nullptr;
  }
  int64_t nested_text = -1;
  std::unique_ptr<Batch> out;
  bool unsure = false;
  Py_BEGIN_ALLOW_THREADS
  try {
    out = std::make_unique<Batch>();
    out->start_fields(*fields);
    // Each line is parsed in place: the bytes after it (the next lines) stand in for the
    // padding simdjson reads past a document's end. Only each block's last lines, too close to
    // its end for that, are copied once into a buffer with real padding. All stay until the
    // batch is finished: its texts are views of them.
    std::deque<simdjson::padded_string> tails;
    od::parser parser;
    for (const Py_buffer &buffer : buffers) {
      bool in_tail = false;
      const char *p = static_cast<const char *>(buffer.buf), *end = p + buffer.len;
      while (p < end) {
        const char *newline = static_cast<const char *>(std::memchr(p, '\n', size_t(end - p)));
        const char *stop = newline ? newline : end;
        if (!blank(p, stop)) {
          size_t length = size_t(stop - p);
          if (size_t(end - p) < length + simdjson::SIMDJSON_PADDING && !in_tail) {
            tails.emplace_back(p, size_t(end - p));
            in_tail = true;
            p = tails.back().data();
            end = p + tails.back().size();
            stop = p + length;
          }
          size_t capacity = size_t(end - p) + (in_tail ? simdjson::SIMDJSON_PADDING : 0);
          od::document doc =
              got(parser.iterate(simdjson::padded_string_view(p, length, capacity)));
          document(doc, *out, *wanted);
          // Something after the document on its line: the polars path reads no such line.
          const char *after = nullptr;
          if (doc.current_location().get(after) == simdjson::SUCCESS) throw Unsure{};
        }
        p = stop + 1;
      }
    }
    nested_text = finish(*out, *wanted);
  } catch (const Unsure &) {
    unsure = true;
  } catch (const std::bad_alloc &) {
    unsure = true;
  }
  Py_END_ALLOW_THREADS
  release();
  if (unsure) Py_RETURN_NONE;
  return result(*out, nested_text);
}

PyObject *version(PyObject *, PyObject *) {
#define SESSIONS_TEXT(x) #x
#define SESSIONS_QUOTED(x) SESSIONS_TEXT(x)
  return PyUnicode_FromString(SESSIONS_QUOTED(SIMDJSON_VERSION));
}

PyMethodDef methods[] = {
    {"extract", extract, METH_VARARGS, "OTLP JSON lines -> span rows and attribute rows."},
    {"simdjson_version", version, METH_NOARGS, "The simdjson release built against."},
    {nullptr, nullptr, 0, nullptr}};

PyModuleDef module = {PyModuleDef_HEAD_INIT, "_otlp_simdjson", nullptr, -1, methods,
                      nullptr, nullptr, nullptr, nullptr};

}  // namespace

PyMODINIT_FUNC PyInit__otlp_simdjson() { return PyModule_Create(&module); }
