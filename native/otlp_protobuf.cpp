// OTLP protobuf requests -> the span rows and wanted-attribute rows of `otlp.spans_from_rows`
// (see rows.h), decoded by the classes protoc generates from opentelemetry-proto's own
// descriptors (setup.py takes them from the installed Python package), on libprotobuf.
//
// It reads what `protobuf.spans_of` (the Python walk over the upb messages) reads, value for
// value. Whatever it is not sure to render exactly as that Python code does (bytes, which
// Python writes as base64; a key-value list; an array item needing JSON escapes; a message
// libprotobuf will not parse) makes it unsure: the caller then walks the batch in
// Python, so results never depend on which path ran.

#include "rows.h"

#include "opentelemetry/proto/collector/trace/v1/trace_service.pb.h"

#include <google/protobuf/arena.h>

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace {

namespace common = opentelemetry::proto::common::v1;
namespace trace = opentelemetry::proto::trace::v1;
using Request = opentelemetry::proto::collector::trace::v1::ExportTraceServiceRequest;

// Python's str.isspace(), which str.strip() removes: Unicode White_Space and the four
// information separators U+001C-U+001F.
bool python_space(uint32_t c) { return is_space(c) || (c >= 0x1c && c <= 0x1f); }

// repr(float), as Python writes it: the shortest digits that read back, fixed notation for a
// decimal exponent from -4 to 15 (with ".0" when whole), else d.ddde+XX.
std::string python_repr(double number) {
  if (std::isnan(number)) return "NaN";  // protobuf._scalar's own spelling
  if (std::isinf(number)) return number > 0 ? "inf" : "-inf";
  char buffer[64];
  auto [end, error] =
      std::to_chars(buffer, buffer + sizeof buffer, number, std::chars_format::scientific);
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
  int point = exponent + 1, n = int(digits.size());  // digits before the decimal point
  if (point < -3 || point > 16) {
    out += digits.substr(0, 1);
    if (n > 1) out += "." + digits.substr(1);
    char tail[8];
    std::snprintf(tail, sizeof tail, "e%c%02d", exponent < 0 ? '-' : '+', std::abs(exponent));
    return out + tail;
  }
  if (point <= 0) return out + "0." + std::string(size_t(-point), '0') + digits;
  if (point >= n) return out + digits + std::string(size_t(point - n), '0') + ".0";
  return out + digits.substr(0, size_t(point)) + "." + digits.substr(size_t(point));
}

// protobuf._scalar: (known, text), the text kept by the batch (the message goes first).
std::pair<bool, std::string_view> scalar(const common::AnyValue &value, Kept &kept) {
  switch (value.value_case()) {
    case common::AnyValue::kStringValue: {
      std::string_view text = stripped(value.string_value(), python_space);
      return {!text.empty(), kept.keep(text)};
    }
    case common::AnyValue::kIntValue:
      return {true, kept.keep(std::to_string(value.int_value()))};
    case common::AnyValue::kBoolValue:
      return {true, value.bool_value() ? "true" : "false"};
    case common::AnyValue::kDoubleValue:
      return {true, kept.keep(python_repr(value.double_value()))};
    case common::AnyValue::kBytesValue:  // base64
      throw Unsure{};
    default:
      return {false, {}};
  }
}

// protobuf._value: an attribute's (text, items, nested).
Value any_value(const common::AnyValue &value, Kept &kept) {
  Value out;
  switch (value.value_case()) {
    case common::AnyValue::kArrayValue: {
      // The items' JSON text, as json.dumps writes it: plain strings only, to be sure.
      out.list = out.nested = out.known = true;
      std::string json = "[";
      for (const common::AnyValue &item : value.array_value().values()) {
        auto [known, text] = scalar(item, kept);
        if (json.size() > 1) json += ',';
        if (!known) {
          json += "null";
        } else {
          for (char c : text)
            if (uint8_t(c) < 0x20 || c == '"' || c == '\\' || c == 0x7f) throw Unsure{};
          json += '"';
          json += text;
          json += '"';
        }
        out.items.emplace_back(known, text);
      }
      json += ']';
      out.text = kept.keep(json);
      return out;
    }
    case common::AnyValue::kKvlistValue:
      throw Unsure{};
    default: {
      auto [known, text] = scalar(value, kept);
      out.known = known;
      out.text = text;
      return out;
    }
  }
}

// protobuf._wanted: the wanted attributes, the first of a repeated key winning.
std::vector<Attribute> wanted_of(
    const google::protobuf::RepeatedPtrField<common::KeyValue> &attributes, Keys &wanted,
    Kept &kept) {
  std::vector<Attribute> out;
  for (const common::KeyValue &attribute : attributes) {
    int key = wanted.find(attribute.key());
    if (key < 0) continue;
    bool repeated = false;
    for (auto &seen : out) repeated = repeated || seen.key == uint32_t(key);
    if (repeated) continue;
    out.push_back({uint32_t(key), any_value(attribute.value(), kept)});
  }
  return out;
}

// Bytes as lowercase hex, into `out` (twice their size); a view of what it wrote.
std::string_view hex(const std::string &bytes, char *out) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < bytes.size(); ++i) {
    out[2 * i] = digits[uint8_t(bytes[i]) >> 4];
    out[2 * i + 1] = digits[uint8_t(bytes[i]) & 15];
  }
  return {out, bytes.size() * 2};
}

// A number's decimal text, as std::to_string writes it, without a string of its own.
template <class Number> void push_number(Text &column, Number number) {
  char buffer[24];
  auto [end, error] = std::to_chars(buffer, buffer + sizeof buffer, number);
  column.push(std::string_view(buffer, size_t(end - buffer)));
}

void span(const trace::Span &s, Batch &out, Keys &wanted,
          const std::vector<Attribute> &shared) {
  const std::string *ids[] = {&s.trace_id(), &s.span_id(), &s.parent_span_id()};
  Text *columns[] = {&out.trace_id, &out.span_id, &out.parent};
  for (int i = 0; i < 3; ++i) {
    if (ids[i]->empty()) {
      columns[i]->push_null();
      continue;
    }
    // Hex of bytes is lowercase hex: only its length can make it not an id.
    if (ids[i]->size() != (i == 0 ? 16u : 8u)) out.ids_hex = false;
    if (ids[i]->size() > 64) {  // no id is this long; written as any other, just not here
      std::string text(ids[i]->size() * 2, '0');
      columns[i]->push(hex(*ids[i], text.data()));
    } else {
      char text[128];
      columns[i]->push(hex(*ids[i], text));
    }
  }
  out.name.push(s.name());
  push_number(out.start, s.start_time_unix_nano());
  push_number(out.end, s.end_time_unix_nano());
  push_number(out.code, int(s.status().code()));
  s.status().message().empty() ? out.message.push_null() : out.message.push(s.status().message());
  // protobuf._exception: the first `exception` event, and its first exception.message.
  bool exception = false;
  std::pair<bool, std::string_view> message{false, {}};
  for (const trace::Span::Event &event : s.events()) {
    if (event.name() != "exception") continue;
    exception = true;
    for (const common::KeyValue &attribute : event.attributes()) {
      if (attribute.key() == "exception.message") {
        message = scalar(attribute.value(), out.kept);
        break;
      }
    }
    break;
  }
  out.exception.values.push(exception);
  message.first ? out.exception_message.push(message.second) : out.exception_message.push_null();
  uint32_t at = out.spans_written++;
  std::vector<Attribute> own = wanted_of(s.attributes(), wanted, out.kept);
  size_t first = out.found.size();
  for (auto &a : own) out.found.emplace_back(at, std::move(a));
  for (const Attribute &a : shared) {
    bool overridden = false;
    for (size_t i = first; i < out.found.size(); ++i)
      overridden = overridden || out.found[i].second.key == a.key;
    if (!overridden) out.found.emplace_back(at, a);
  }
  out.choose(wanted, at, first, out.found.size());
}

// read(bodies: list[bytes], keys, prefixes, chains, tags, objects, text_keys)
//   -> (spans, attributes, nested text count | None, whether every id is lowercase hex)
//      | None (unsure: walk them in Python)
PyObject *read(PyObject *, PyObject *args) {
  PyObject *bodies, *keys, *prefixes, *chains, *tags, *objects, *text_keys;
  if (!PyArg_ParseTuple(args, "O!OOOOOO", &PyList_Type, &bodies, &keys, &prefixes, &chains,
                        &tags, &objects, &text_keys))
    return nullptr;
  std::unique_ptr<Fields> fields;
  std::unique_ptr<Keys> wanted;
  try {
    fields = make_fields(chains, tags, objects, text_keys);
    wanted = std::make_unique<Keys>(strings(keys), strings(prefixes), fields.get());
  } catch (const std::runtime_error &) {
    return nullptr;
  }
  // The list holds the bytes while the GIL is released; nothing else may change it then.
  std::vector<std::string_view> messages;
  for (Py_ssize_t i = 0; i < PyList_GET_SIZE(bodies); ++i) {
    PyObject *body = PyList_GET_ITEM(bodies, i);
    if (!PyBytes_Check(body)) {
      PyErr_SetString(PyExc_TypeError, "bodies must be bytes");
      return nullptr;
    }
    messages.emplace_back(PyBytes_AS_STRING(body), size_t(PyBytes_GET_SIZE(body)));
  }
  Py_INCREF(bodies);
  int64_t nested_text = -1;
  std::unique_ptr<Batch> out;
  bool unsure = false;
  Py_BEGIN_ALLOW_THREADS
  try {
    out = std::make_unique<Batch>();
    out->start_fields(*fields);
    for (std::string_view body : messages) {
      google::protobuf::Arena arena;
      auto *request = google::protobuf::Arena::CreateMessage<Request>(&arena);
      if (body.size() > INT32_MAX || !request->ParseFromArray(body.data(), int(body.size())))
        throw Unsure{};
      for (const trace::ResourceSpans &resource : request->resource_spans()) {
        std::vector<Attribute> shared =
            wanted_of(resource.resource().attributes(), *wanted, out->kept);
        for (const trace::ScopeSpans &scope : resource.scope_spans())
          for (const trace::Span &s : scope.spans()) span(s, *out, *wanted, shared);
      }
    }
    nested_text = finish(*out, *wanted);
  } catch (const Unsure &) {
    unsure = true;
  } catch (const std::bad_alloc &) {
    unsure = true;
  }
  Py_END_ALLOW_THREADS
  Py_DECREF(bodies);
  if (unsure) Py_RETURN_NONE;
  return result(*out, nested_text);
}

PyObject *version(PyObject *, PyObject *) {
  return PyUnicode_FromString(google::protobuf::internal::VersionString(GOOGLE_PROTOBUF_VERSION).c_str());
}

PyMethodDef methods[] = {
    {"read", read, METH_VARARGS, "OTLP protobuf requests -> span rows and attribute rows."},
    {"protobuf_version", version, METH_NOARGS, "The libprotobuf release built against."},
    {nullptr, nullptr, 0, nullptr}};

PyModuleDef module = {PyModuleDef_HEAD_INIT, "_otlp_protobuf", nullptr, -1, methods,
                      nullptr, nullptr, nullptr, nullptr};

}  // namespace

PyMODINIT_FUNC PyInit__otlp_protobuf() { return PyModule_Create(&module); }
