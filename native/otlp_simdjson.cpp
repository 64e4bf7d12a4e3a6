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

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <simdjson.h>

#include <charconv>
#include <cstdint>
#include <cstring>
#include <deque>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace od = simdjson::ondemand;

// ---------------------------------------------------------------------------------------------
// The Arrow C data interface (https://arrow.apache.org/docs/format/CDataInterface.html)

extern "C" {
struct ArrowSchema {
  const char *format;
  const char *name;
  const char *metadata;
  int64_t flags;
  int64_t n_children;
  struct ArrowSchema **children;
  struct ArrowSchema *dictionary;
  void (*release)(struct ArrowSchema *);
  void *private_data;
};
struct ArrowArray {
  int64_t length;
  int64_t null_count;
  int64_t offset;
  int64_t n_buffers;
  int64_t n_children;
  const void **buffers;
  struct ArrowArray **children;
  struct ArrowArray *dictionary;
  void (*release)(struct ArrowArray *);
  void *private_data;
};
}

namespace {

constexpr int64_t ARROW_FLAG_NULLABLE = 2;

struct Unsure {};  // thrown when this batch must go the polars way

// Bit-packed validity or boolean values.
struct Bits {
  std::vector<uint8_t> bytes;
  int64_t length = 0;
  void push(bool bit) {
    if ((length & 7) == 0) bytes.push_back(0);
    if (bit) bytes.back() |= uint8_t(1u << (length & 7));
    ++length;
  }
};

// The columns of one table; each kind owns its buffers until the consumer releases them.
struct Column {
  virtual ~Column() = default;
  virtual const char *format() const = 0;
  virtual int64_t length() const = 0;
  virtual int64_t nulls() const { return 0; }
  virtual std::vector<const void *> buffers() const = 0;
  virtual std::vector<Column *> children() { return {}; }
  std::string name;
};

struct Text final : Column {
  std::vector<int32_t> offsets{0};
  std::string data;
  Bits valid;
  int64_t null_count = 0;
  void push(std::string_view s) {
    data.append(s);
    if (data.size() > INT32_MAX) throw Unsure{};
    offsets.push_back(int32_t(data.size()));
    valid.push(true);
  }
  void push_null() {
    offsets.push_back(int32_t(data.size()));
    valid.push(false);
    ++null_count;
  }
  const char *format() const override { return "u"; }
  int64_t length() const override { return int64_t(offsets.size()) - 1; }
  int64_t nulls() const override { return null_count; }
  std::vector<const void *> buffers() const override {
    return {valid.bytes.data(), offsets.data(), data.data()};
  }
};

struct Flags final : Column {
  Bits values;
  const char *format() const override { return "b"; }
  int64_t length() const override { return values.length; }
  std::vector<const void *> buffers() const override { return {nullptr, values.bytes.data()}; }
};

struct Rows final : Column {
  std::vector<uint32_t> values;
  const char *format() const override { return "I"; }
  int64_t length() const override { return int64_t(values.size()); }
  std::vector<const void *> buffers() const override { return {nullptr, values.data()}; }
};

struct TextLists final : Column {  // list<utf8>
  std::vector<int32_t> offsets{0};
  Bits valid;
  int64_t null_count = 0;
  Text items;
  void push(const std::vector<std::pair<bool, std::string>> &values) {
    for (auto &[known, text] : values) known ? items.push(text) : items.push_null();
    offsets.push_back(int32_t(items.length()));
    valid.push(true);
  }
  void push_null() {
    offsets.push_back(int32_t(items.length()));
    valid.push(false);
    ++null_count;
  }
  const char *format() const override { return "+l"; }
  int64_t length() const override { return int64_t(offsets.size()) - 1; }
  int64_t nulls() const override { return null_count; }
  std::vector<const void *> buffers() const override {
    return {valid.bytes.data(), offsets.data()};
  }
  std::vector<Column *> children() override {
    items.name = "item";
    return {&items};
  }
};

// A struct array of columns, exported: the struct owns the columns (shared by every child).
struct Table {
  std::vector<std::unique_ptr<Column>> columns;
  template <class T> T &add(const char *name) {
    auto column = std::make_unique<T>();
    column->name = name;
    T &out = *column;
    columns.push_back(std::move(column));
    return out;
  }
};

struct SchemaHolder {
  std::vector<ArrowSchema *> children;
  std::string name;
};
void release_schema(ArrowSchema *schema) {
  auto *holder = static_cast<SchemaHolder *>(schema->private_data);
  for (ArrowSchema *child : holder->children) {
    if (child->release) child->release(child);
    delete child;
  }
  delete holder;
  schema->release = nullptr;
}

struct ArrayHolder {
  std::vector<const void *> buffers;
  std::vector<ArrowArray *> children;
  std::shared_ptr<Table> keep;  // the root holds the table; children share it
};
void release_array(ArrowArray *array) {
  auto *holder = static_cast<ArrayHolder *>(array->private_data);
  for (ArrowArray *child : holder->children) {
    if (child->release) child->release(child);
    delete child;
  }
  delete holder;
  array->release = nullptr;
}

void fill_schema(ArrowSchema *out, const char *format, const std::string &name,
                 std::vector<ArrowSchema *> children) {
  auto *holder = new SchemaHolder{std::move(children), name};
  *out = ArrowSchema{format, holder->name.c_str(), nullptr, ARROW_FLAG_NULLABLE,
                     int64_t(holder->children.size()), holder->children.data(), nullptr,
                     release_schema, holder};
}

ArrowSchema *column_schema(Column &column) {
  std::vector<ArrowSchema *> children;
  for (Column *child : column.children()) children.push_back(column_schema(*child));
  auto *schema = new ArrowSchema;
  fill_schema(schema, column.format(), column.name, std::move(children));
  return schema;
}

void fill_array(ArrowArray *out, int64_t length, int64_t nulls, std::vector<const void *> buffers,
                std::vector<ArrowArray *> children, std::shared_ptr<Table> keep) {
  auto *holder = new ArrayHolder{std::move(buffers), std::move(children), std::move(keep)};
  *out = ArrowArray{length, nulls, 0, int64_t(holder->buffers.size()),
                    int64_t(holder->children.size()), holder->buffers.data(),
                    holder->children.data(), nullptr, release_array, holder};
}

ArrowArray *column_array(Column &column, const std::shared_ptr<Table> &keep) {
  std::vector<ArrowArray *> children;
  for (Column *child : column.children()) children.push_back(column_array(*child, keep));
  auto *array = new ArrowArray;
  fill_array(array, column.length(), column.nulls(), column.buffers(), std::move(children), keep);
  return array;
}

void drop_schema(PyObject *capsule) {
  auto *schema = static_cast<ArrowSchema *>(PyCapsule_GetPointer(capsule, "arrow_schema"));
  if (schema->release) schema->release(schema);
  delete schema;
}
void drop_array(PyObject *capsule) {
  auto *array = static_cast<ArrowArray *>(PyCapsule_GetPointer(capsule, "arrow_array"));
  if (array->release) array->release(array);
  delete array;
}

// (schema capsule, array capsule) of the table as one struct array.
PyObject *exported(std::shared_ptr<Table> table, int64_t length) {
  std::vector<ArrowSchema *> fields;
  std::vector<ArrowArray *> arrays;
  for (auto &column : table->columns) {
    fields.push_back(column_schema(*column));
    arrays.push_back(column_array(*column, table));
  }
  auto *schema = new ArrowSchema;
  fill_schema(schema, "+s", "", std::move(fields));
  schema->flags = 0;
  auto *array = new ArrowArray;
  fill_array(array, length, 0, {nullptr}, std::move(arrays), table);
  PyObject *s = PyCapsule_New(schema, "arrow_schema", drop_schema);
  PyObject *a = PyCapsule_New(array, "arrow_array", drop_array);
  if (!s || !a) {
    Py_XDECREF(s);
    Py_XDECREF(a);
    return nullptr;
  }
  return Py_BuildValue("(NN)", s, a);
}

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
// booleans as true/false, null as absent. Objects and arrays: unsure.
bool scalar_text(od::value value, std::string &out) {
  switch (got(value.type())) {
    case od::json_type::string:
      out.assign(got(value.get_string()));
      if (out.find('\0') != std::string::npos) throw Unsure{};
      return true;
    case od::json_type::number: {
      std::string_view token = value.raw_json_token();
      while (!token.empty() && (token.back() == ' ' || token.back() == '\t' ||
                                token.back() == '\n' || token.back() == '\r'))
        token.remove_suffix(1);
      if (is_integer(token)) {
        if (token == "-0") throw Unsure{};
        out.assign(token);
        return true;
      }
      out = fixed(got(value.get_double()));
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

// Unicode White_Space, which polars' strip_chars removes from both ends.
bool is_space(uint32_t c) {
  return (c >= 0x09 && c <= 0x0d) || c == 0x20 || c == 0x85 || c == 0xa0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f ||
         c == 0x205f || c == 0x3000;
}

// The code point starting at s[i] and its length in bytes (the text is valid UTF-8).
std::pair<uint32_t, size_t> code_point(std::string_view s, size_t i) {
  auto b = uint8_t(s[i]);
  if (b < 0x80) return {b, 1};
  size_t n = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : 2;
  uint32_t c = b & (0x7f >> n);
  for (size_t k = 1; k < n; ++k) c = (c << 6) | (uint8_t(s[i + k]) & 0x3f);
  return {c, n};
}

std::string_view trimmed(std::string_view s) {
  while (!s.empty()) {
    auto [c, n] = code_point(s, 0);
    if (!is_space(c)) break;
    s.remove_prefix(n);
  }
  while (!s.empty()) {
    size_t i = s.size() - 1;
    while (i > 0 && (uint8_t(s[i]) & 0xc0) == 0x80) --i;
    auto [c, n] = code_point(s, i);
    if (!is_space(c)) break;
    s.remove_suffix(s.size() - i);
  }
  return s;
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

// An attribute's value as (text, items, nested), as `otlp._attribute_rows` has it.
struct Value {
  bool known = false;  // text is not null
  std::string text;
  bool list = false;  // items is not null
  std::vector<std::pair<bool, std::string>> items;
  bool nested = false;
};

// The first scalar of an AnyValue object, in polars' coalesce order.
const char *const SCALARS[] = {"stringValue", "intValue", "doubleValue", "boolValue",
                               "bytesValue"};

int scalar_rank(std::string_view key) {
  for (int i = 0; i < 5; ++i)
    if (key == SCALARS[i]) return i;
  return -1;
}

bool plain_ascii(std::string_view s) {
  for (char c : s)
    if (uint8_t(c) < 0x20 || uint8_t(c) >= 0x7f || c == '"' || c == '\\') return false;
  return true;
}

// AnyValue -> Value. At the top (an attribute's value) the text is trimmed, "" is absent, and
// arrays of scalars are read (tags) as items and JSON text; key-value lists are left to polars.
// Inside an array (`top` false) it is the first scalar as it is, untrimmed.
Value any_value(od::value value, bool top) {
  Value out;
  if (got(value.type()) == od::json_type::null) return out;
  od::object object = got(value.get_object());
  int best = 99;
  std::string text;
  bool seen[5] = {false, false, false, false, false};
  for (auto result : object) {
    od::field field = got(std::move(result));
    std::string_view key = raw_key(field);
    int rank = scalar_rank(key);
    if (rank >= 0) {
      if (seen[rank]) throw Unsure{};
      seen[rank] = true;
      if (scalar_text(field.value(), text) && rank < best) {
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
          Value scalar = any_value(element, false);
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
    std::string_view kept = trimmed(out.text);
    out.text.assign(kept);
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
        json += '"' + item + '"';
      }
    }
    json += ']';
    std::string_view kept = trimmed(json);
    out.text.assign(kept);
    out.known = true;
  }
  if (!out.known && out.list) out.nested = true;
  return out;
}

struct Wanted {
  // Views of `owned`, so that a key read from the input is looked up without a copy.
  std::vector<std::string> owned;
  std::unordered_set<std::string_view> keys;
  std::vector<std::string> prefixes;
  Wanted(std::vector<std::string> wanted, std::vector<std::string> prefixes)
      : owned(std::move(wanted)), keys(owned.begin(), owned.end()),
        prefixes(std::move(prefixes)) {}
  // 0: not wanted; 1: a wanted key; 2: under a prefix; 3: both.
  int kind(std::string_view key) const { return (keys.count(key) ? 1 : 0) | (prefixed(key) ? 2 : 0); }
  bool prefixed(std::string_view key) const {
    for (auto &prefix : prefixes)
      if (key.substr(0, prefix.size()) == prefix) return true;
    return false;
  }
};

struct Attribute {
  std::string key;
  Value value;
  bool prefixed = false;  // under a metadata prefix
};

// The wanted attributes of an `attributes` array, in order; a repeated wanted key: unsure.
std::vector<Attribute> attributes(od::value value, const Wanted &wanted, bool top = true) {
  std::vector<Attribute> out;
  if (got(value.type()) == od::json_type::null) return out;
  for (auto entry : got(value.get_array())) {
    od::value item = got(std::move(entry));
    if (got(item.type()) == od::json_type::null) continue;
    od::object object = got(item.get_object());
    std::string_view key;
    std::string unescaped;  // the key's text when it is not the bytes as written
    bool has_key = false, has_value = false;
    int kind = 0;
    Value parsed;
    // The key may come after the value: read the value only once the key is known wanted.
    // On-Demand reads forward, so a value before its key is parsed whatever the key.
    for (auto result : object) {
      od::field field = got(std::move(result));
      std::string_view name = raw_key(field);
      if (name == "key") {
        if (has_key) throw Unsure{};
        has_key = true;
        key = plain_string(field.value());
        if (key.data() == nullptr) {
          if (!scalar_text(field.value(), unescaped)) throw Unsure{};
          key = unescaped;
        }
        kind = wanted.kind(key);
      } else if (name == "value") {
        if (has_value) throw Unsure{};
        has_value = true;
        if (has_key && !kind) {
          skip(field.value());
          continue;
        }
        parsed = any_value(field.value(), top);
      } else {
        skip(field.value());
      }
    }
    if (!has_key || !kind) continue;
    for (auto &seen : out)
      if (seen.key == key) throw Unsure{};
    out.push_back({std::string(key), std::move(parsed), (kind & 2) != 0});
  }
  return out;
}

// What the batch's fields are made of, when the caller asks for them to be chosen here.
struct Fields {
  std::vector<std::string> names;  // "_<field>", a column each
  std::deque<std::string> owned;   // the keys below are views of these (a deque never moves them)
  struct Key {
    std::vector<std::pair<int, int>> chains;  // (field, rank) of each chain it is in
    bool tag = false, object = false, text = false;
  };
  std::unordered_map<std::string_view, Key> keys;  // one lookup tells all of a key
  const Key *of(std::string_view key) const {
    auto found = keys.find(key);
    return found == keys.end() ? nullptr : &found->second;
  }
  std::string_view own(std::string text) {
    owned.push_back(std::move(text));
    return owned.back();
  }
};

struct Batch {
  std::shared_ptr<Table> spans = std::make_shared<Table>();
  std::shared_ptr<Table> attrs = std::make_shared<Table>();
  Text &trace_id = spans->add<Text>("traceId");
  Text &span_id = spans->add<Text>("spanId");
  Text &parent = spans->add<Text>("parentSpanId");
  Text &name = spans->add<Text>("name");
  Text &start = spans->add<Text>("startTimeUnixNano");
  Text &end = spans->add<Text>("endTimeUnixNano");
  Text &code = spans->add<Text>("code");
  Text &message = spans->add<Text>("message");
  Flags &exception = spans->add<Flags>("_exception");
  Text &exception_message = spans->add<Text>("_exception_message");
  Rows &row = attrs->add<Rows>("row");
  Text &key = attrs->add<Text>("key");
  Text &text = attrs->add<Text>("text");
  TextLists &items = attrs->add<TextLists>("items");
  Flags &nested = attrs->add<Flags>("nested");
  // Every wanted attribute of every span, in the polars path's order: a span's own, and at
  // the end its resource's (`shared`, waiting until every span's own are in), the first of a
  // (row, key) kept.
  std::vector<std::pair<uint32_t, Attribute>> found;
  std::vector<std::pair<uint32_t, Attribute>> shared;
  uint32_t spans_written = 0;
  bool ids_hex = true;  // every id lowercase hex of its length, empty, or absent

  // Where each span's own attributes are in `found`, to let them win over its resource's.
  std::vector<std::pair<size_t, size_t>> own_rows;

  bool has(uint32_t at, const std::string &wanted) const {
    auto [first, last] = own_rows[at];
    for (size_t i = first; i < last; ++i)
      if (found[i].second.key == wanted) return true;
    return false;
  }

  void attribute(uint32_t at, const Attribute &a, bool null_text = false) {
    row.values.push_back(at);
    key.push(a.key);
    a.value.known && !null_text ? text.push(a.value.text) : text.push_null();
    a.value.list ? items.push(a.value.items) : items.push_null();
    nested.values.push(a.value.nested);
  }

  // Every attribute as a row, for the caller to choose fields from.
  void all_rows() {
    for (auto &[at, a] : found) attribute(at, a);
  }

  // Each field's text from the first key of its chain that has a scalar value (an array or
  // key-value list there is not a session id: its text counts as absent, and `nested` counts
  // it), as a column `_<field>` of the spans; rows only for the attributes still read as rows
  // (tags, metadata). As `otlp._chosen` and `spans_from_rows` do it.
  int64_t chosen_rows(const Fields &fields) {
    size_t n = fields.names.size();
    std::vector<int> best(n * spans_written, INT32_MAX);
    std::vector<size_t> from(n * spans_written, 0);
    int64_t nested_text = 0;
    for (size_t i = 0; i < found.size(); ++i) {
      auto &[at, a] = found[i];
      const Fields::Key *key = fields.of(a.key);
      bool text_key = key && key->text;
      if (a.value.nested && text_key) ++nested_text;
      if (key && a.value.known && !a.value.nested) {
        for (auto [field, rank] : key->chains) {
          size_t slot = size_t(field) * spans_written + at;
          if (rank < best[slot]) {
            best[slot] = rank;
            from[slot] = i;
          }
        }
      }
      if ((key && key->tag) || a.prefixed) attribute(at, a, a.value.nested && text_key);
    }
    for (size_t f = 0; f < n; ++f) {
      Text &column = spans->add<Text>(fields.names[f].c_str());
      for (uint32_t at = 0; at < spans_written; ++at) {
        size_t slot = f * spans_written + at;
        best[slot] == INT32_MAX ? column.push_null() : column.push(found[from[slot]].second.value.text);
      }
    }
    return nested_text;
  }
};

// As `otlp.ids_are_hex` checks an id: then `normalise_id` may skip its base64 branch.
bool hex_id(const std::string &id, size_t length) {
  if (id.empty()) return true;
  if (id.size() != length) return false;
  for (char c : id)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

// An exception event's (seen, message): the first exception.message of the span's events.
void events(od::value value, bool &seen, Value &message, bool &has_message) {
  if (got(value.type()) == od::json_type::null) return;
  for (auto entry : got(value.get_array())) {
    od::value event = got(std::move(entry));
    if (got(event.type()) == od::json_type::null) continue;
    od::object object = got(event.get_object());
    std::string name;
    bool named = false;
    std::vector<Attribute> found;
    bool read = false;
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
        name = raw == "\"exception\"" ? "exception" : "";
      } else if (key == "attributes") {
        if (read) throw Unsure{};
        read = true;
        static const Wanted only{{"exception.message"}, {}};
        found = attributes(field.value(), only, false);
      } else {
        skip(field.value());
      }
    }
    if (!named || name != "exception") continue;
    seen = true;
    if (!has_message && !found.empty()) {
      has_message = true;  // the first, as it is (a later one does not replace an absent one)
      message = found[0].value;
    }
  }
}

void span(od::value value, Batch &out, const Wanted &wanted) {
  od::object object = got(value.get_object());
  bool seen[9] = {};
  std::vector<Attribute> own;
  bool status_code = false, status_message = false, exception = false, has_message = false;
  std::string code, message;
  Value exception_message;
  Text *texts[] = {&out.trace_id, &out.span_id, &out.parent, &out.name, &out.start, &out.end};
  const char *names[] = {"traceId", "spanId", "parentSpanId", "name", "startTimeUnixNano",
                         "endTimeUnixNano"};
  std::string values[6];
  bool known[6] = {};
  for (auto result : object) {
    od::field field = got(std::move(result));
    std::string_view key = raw_key(field);
    int slot = -1;
    for (int i = 0; i < 6; ++i)
      if (key == names[i]) slot = i;
    if (slot >= 0) {
      if (seen[slot]) throw Unsure{};
      seen[slot] = true;
      known[slot] = scalar_text(field.value(), values[slot]);
    } else if (key == "attributes") {
      if (seen[6]) throw Unsure{};
      seen[6] = true;
      own = attributes(field.value(), wanted);
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
          status_code = scalar_text(f.value(), code);
        } else if (k == "message") {
          if (seen_message) throw Unsure{};
          seen_message = true;
          status_message = scalar_text(f.value(), message);
        } else {
          skip(f.value());
        }
      }
    } else if (key == "events") {
      if (seen[8]) throw Unsure{};
      seen[8] = true;
      events(field.value(), exception, exception_message, has_message);
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
  uint32_t at = out.spans_written++;
  size_t first = out.found.size();
  for (auto &a : own) out.found.emplace_back(at, std::move(a));
  out.own_rows.emplace_back(first, out.found.size());
}

// A resource's spans, then its wanted attributes for each of them.
void resource_spans(od::value value, Batch &out, const Wanted &wanted) {
  if (got(value.type()) == od::json_type::null) return;
  od::object object = got(value.get_object());
  uint32_t first = out.spans_written;
  std::vector<Attribute> shared;
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
        shared = attributes(f.value(), wanted);
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
  for (uint32_t at = first; at < out.spans_written; ++at)
    for (auto &a : shared) out.shared.emplace_back(at, a);
}

void document(od::document &doc, Batch &out, const Wanted &wanted) {
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

std::vector<std::string> strings(PyObject *sequence) {
  std::vector<std::string> out;
  PyObject *fast = PySequence_Fast(sequence, "expected a sequence of str");
  if (!fast) throw std::runtime_error("keys");
  for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(fast); ++i) {
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(PySequence_Fast_GET_ITEM(fast, i), &n);
    if (!s) {
      Py_DECREF(fast);
      throw std::runtime_error("keys");
    }
    out.emplace_back(s, size_t(n));
  }
  Py_DECREF(fast);
  return out;
}

bool blank(const char *p, const char *end) {
  for (; p < end; ++p)
    if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n') return false;
  return true;
}

// fields: ((name, (key, ...)), ...), tags, objects, text keys -> Fields
std::unique_ptr<Fields> make_fields(PyObject *chains, PyObject *tags, PyObject *objects,
                                    PyObject *text_keys) {
  auto fields = std::make_unique<Fields>();
  PyObject *fast = PySequence_Fast(chains, "expected a sequence of (field, keys)");
  if (!fast) throw std::runtime_error("fields");
  for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(fast); ++i) {
    PyObject *name, *keys;
    if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(fast, i), "UO", &name, &keys)) {
      Py_DECREF(fast);
      throw std::runtime_error("fields");
    }
    const char *text = PyUnicode_AsUTF8(name);
    if (!text) {
      Py_DECREF(fast);
      throw std::runtime_error("fields");
    }
    fields->names.push_back(std::string("_") + text);
    int rank = 0;
    for (auto &key : strings(keys))
      fields->keys[fields->own(key)].chains.emplace_back(int(fields->names.size()) - 1, rank++);
  }
  Py_DECREF(fast);
  for (auto &key : strings(tags)) fields->keys[fields->own(key)].tag = true;
  for (auto &key : strings(objects)) fields->keys[fields->own(key)].object = true;
  for (auto &key : strings(text_keys)) fields->keys[fields->own(key)].text = true;
  return fields;
}

// extract(lines: bytes, keys, prefixes, chains, tags, objects, text_keys)
//   -> ((schema, array) of spans, (schema, array) of attributes, nested text count | None,
//       whether every id is lowercase hex) | None
// `lines`: OTLP JSON documents one per line, as the polars path splits them (blank lines are
// skipped; a document across lines, or two on one, is malformed there, and unsure here).
// Each field is chosen here from its chain (`Batch::chosen_rows`), unless an attribute of the
// batch is a JSON object whose keys may take part: then every attribute is a row, and the
// count is None.
PyObject *extract(PyObject *, PyObject *args) {
  Py_buffer buffer;
  PyObject *keys, *prefixes, *chains, *tags, *objects, *text_keys;
  if (!PyArg_ParseTuple(args, "y*OOOOOO", &buffer, &keys, &prefixes, &chains, &tags, &objects,
                        &text_keys))
    return nullptr;
  std::unique_ptr<Wanted> wanted;
  std::unique_ptr<Fields> fields;
  try {
    wanted = std::make_unique<Wanted>(strings(keys), strings(prefixes));
    fields = make_fields(chains, tags, objects, text_keys);
  } catch (const std::runtime_error &) {
    PyBuffer_Release(&buffer);
    return nullptr;
  }
  int64_t nested_text = -1;
  std::unique_ptr<Batch> out;
  bool unsure = false;
  Py_BEGIN_ALLOW_THREADS
  try {
    out = std::make_unique<Batch>();
    // Each line is parsed in place: the bytes after it (the next lines) stand in for the
    // padding simdjson reads past a document's end. Only the last lines, too close to the
    // buffer's end for that, are copied once into a buffer with real padding.
    simdjson::padded_string tail;
    od::parser parser;
    const char *p = static_cast<const char *>(buffer.buf), *end = p + buffer.len;
    while (p < end) {
      const char *newline = static_cast<const char *>(std::memchr(p, '\n', size_t(end - p)));
      const char *stop = newline ? newline : end;
      if (!blank(p, stop)) {
        size_t length = size_t(stop - p);
        if (size_t(end - p) < length + simdjson::SIMDJSON_PADDING && tail.size() == 0) {
          tail = simdjson::padded_string(p, size_t(end - p));
          p = tail.data();
          end = p + tail.size();
          stop = p + length;
        }
        size_t capacity = size_t(end - p) + (tail.size() ? simdjson::SIMDJSON_PADDING : 0);
        od::document doc = got(parser.iterate(simdjson::padded_string_view(p, length, capacity)));
        document(doc, *out, *wanted);
        // Something after the document on its line: the polars path reads no such line.
        const char *after = nullptr;
        if (doc.current_location().get(after) == simdjson::SUCCESS) throw Unsure{};
      }
      p = stop + 1;
    }
    for (auto &[at, a] : out->shared)
      if (!out->has(at, a.key)) out->found.emplace_back(at, std::move(a));
    bool objects_found = false;
    for (auto &[at, a] : out->found) {
      const Fields::Key *key = fields->of(a.key);
      objects_found = objects_found || (key && key->object);
    }
    if (!objects_found) {
      nested_text = out->chosen_rows(*fields);
    } else {
      out->all_rows();
    }
  } catch (const Unsure &) {
    unsure = true;
  } catch (const std::bad_alloc &) {
    unsure = true;
  }
  Py_END_ALLOW_THREADS
  PyBuffer_Release(&buffer);
  if (unsure) Py_RETURN_NONE;
  PyObject *spans = exported(out->spans, out->spans_written);
  PyObject *attrs = exported(out->attrs, int64_t(out->row.values.size()));
  if (!spans || !attrs) {
    Py_XDECREF(spans);
    Py_XDECREF(attrs);
    return nullptr;
  }
  PyObject *ids_hex = out->ids_hex ? Py_True : Py_False;
  if (nested_text < 0) return Py_BuildValue("(NNOO)", spans, attrs, Py_None, ids_hex);
  return Py_BuildValue("(NNLO)", spans, attrs, (long long)nested_text, ids_hex);
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
