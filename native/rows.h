// What both native readers (OTLP JSON lines with simdjson, OTLP protobuf with the generated
// classes) hand to `otlp.spans_from_rows`: one row per span and one per wanted attribute, each
// field's key chosen by its chain, as Arrow struct arrays through the Arrow C data interface
// (PyCapsules "arrow_schema" / "arrow_array"), which polars imports.
//
// A reader throws Unsure whenever its input is not what it is sure to read exactly as the
// Python path does; the caller then returns None and that batch goes the Python way.

#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <algorithm>
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

// Whether `s` is a whole number as written (a minus only before a number other than 0, no
// leading zero, within 64 bits): the texts whose number polars reads the same way, and whose
// decimal form gives the text back.
inline bool whole_number(std::string_view s, int64_t &out) {
  bool minus = !s.empty() && s[0] == '-';
  std::string_view digits = s.substr(minus ? 1 : 0);
  if (digits.empty() || digits.size() > 19 || (digits[0] == '0' && (digits.size() > 1 || minus)))
    return false;
  uint64_t n = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return false;
    n = n * 10 + uint64_t(c - '0');
  }
  if (n > uint64_t(INT64_MAX)) return false;
  out = minus ? -int64_t(n) : int64_t(n);
  return true;
}

struct Text final : Column {
  std::vector<int32_t> offsets{0};
  std::string data;
  Bits valid;
  int64_t null_count = 0;
  // A column of numbers as text (times, token counts) keeps only the numbers while every text
  // is a whole number as written, and is handed over as int64: polars would otherwise turn the
  // texts into numbers again. At the first other text it becomes a text column.
  bool numeric = false;
  std::vector<int64_t> numbers;

  void numbers_only() {
    numeric = true;
    numbers.reserve(1024);  // a data buffer, even when empty
  }
  void push(std::string_view s) {
    if (numeric) {
      int64_t n;
      if (whole_number(s, n)) {
        numbers.push_back(n);
        valid.push(true);
        return;
      }
      as_text();
    }
    data.append(s);
    if (data.size() > INT32_MAX) throw Unsure{};
    offsets.push_back(int32_t(data.size()));
    valid.push(true);
  }
  void push_null() {
    if (numeric) numbers.push_back(0);
    else offsets.push_back(int32_t(data.size()));
    valid.push(false);
    ++null_count;
  }
  // The numbers so far back to their texts (exactly: each was written in that form).
  void as_text() {
    numeric = false;
    for (size_t i = 0; i < numbers.size(); ++i) {
      if ((valid.bytes[i >> 3] >> (i & 7)) & 1) data += std::to_string(numbers[i]);
      offsets.push_back(int32_t(data.size()));
    }
    std::vector<int64_t>().swap(numbers);
  }
  const char *format() const override { return numeric ? "l" : "u"; }
  int64_t length() const override {
    return numeric ? int64_t(numbers.size()) : int64_t(offsets.size()) - 1;
  }
  int64_t nulls() const override { return null_count; }
  std::vector<const void *> buffers() const override {
    if (numeric) return {valid.bytes.data(), numbers.data()};
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
  void push(const std::vector<std::pair<bool, std::string_view>> &values) {
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

// `s` without the code points `space` holds true for at either end (polars' strip_chars and
// Python's str.strip differ only in which those are).
std::string_view stripped(std::string_view s, bool (*space)(uint32_t)) {
  while (!s.empty()) {
    auto [c, n] = code_point(s, 0);
    if (!space(c)) break;
    s.remove_prefix(n);
  }
  while (!s.empty()) {
    size_t i = s.size() - 1;
    while (i > 0 && (uint8_t(s[i]) & 0xc0) == 0x80) --i;
    auto [c, n] = code_point(s, i);
    if (!space(c)) break;
    s.remove_suffix(s.size() - i);
  }
  return s;
}

// Text a batch keeps until it is finished, when its views are copied into the columns: text
// that cannot be a view of the input (unescaped strings, numbers written out, strings of a
// protobuf message freed before the batch ends), in blocks that never move.
class Kept {
  std::vector<std::unique_ptr<char[]>> blocks;
  size_t used = 0, size = 0;

 public:
  std::string_view keep(std::string_view text) {
    if (text.empty()) return std::string_view("", 0);
    if (used + text.size() > size) {
      size = std::max<size_t>(size_t(1) << 20, text.size());
      blocks.emplace_back(new char[size]);
      used = 0;
    }
    char *at = blocks.back().get() + used;
    std::memcpy(at, text.data(), text.size());
    used += text.size();
    return {at, text.size()};
  }
};

// An attribute's value as (text, items, nested), as `otlp._attribute_rows` has it. The texts
// are views: of the input, or of the batch's `Kept`.
struct Value {
  bool known = false;  // text is not null
  bool list = false;   // items is not null
  bool nested = false;
  std::string_view text;
  std::vector<std::pair<bool, std::string_view>> items;
};

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

// The wanted attribute keys, each with a number: a key read from the input is looked up once,
// and from then on the batch holds its number, not its text. Keys under a metadata prefix are
// numbered as they are first seen.
class Keys {
 public:
  struct Key {
    std::string_view text;
    bool prefixed;                // under a metadata prefix
    const Fields::Key *field;     // what the fields make of it; null: nothing
  };

  Keys(const std::vector<std::string> &wanted, std::vector<std::string> prefixes,
       const Fields *fields)
      : prefixes(std::move(prefixes)), fields(fields) {
    for (auto &key : wanted) add(key);
  }
  // The key's number, or -1 when it is not wanted.
  int find(std::string_view key) {
    auto found = numbers.find(key);
    if (found != numbers.end()) return found->second;
    return prefixed(key) ? add(key) : -1;
  }
  const Key &operator[](uint32_t number) const { return table[number]; }

 private:
  std::vector<std::string> prefixes;
  const Fields *fields;
  Kept texts;
  std::unordered_map<std::string_view, int> numbers;
  std::vector<Key> table;

  bool prefixed(std::string_view key) const {
    for (auto &prefix : prefixes)
      if (key.substr(0, prefix.size()) == prefix) return true;
    return false;
  }
  int add(std::string_view key) {
    auto found = numbers.find(key);
    if (found != numbers.end()) return found->second;
    std::string_view text = texts.keep(key);
    table.push_back({text, prefixed(text), fields ? fields->of(text) : nullptr});
    return numbers[text] = int(table.size()) - 1;
  }
};

struct Attribute {
  uint32_t key;  // its number in the batch's Keys
  Value value;
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
  Kept kept;  // what the views below point to, when not the input
  // Every wanted attribute of every span, in the polars path's order: a span's own, and at
  // the end its resource's (`shared`, waiting until every span's own are in), the first of a
  // (row, key) kept.
  std::vector<std::pair<uint32_t, Attribute>> found;
  std::vector<std::pair<uint32_t, Attribute>> shared;
  uint32_t spans_written = 0;
  bool ids_hex = true;  // every id lowercase hex of its length, empty, or absent

  // Where each span's own attributes are in `found`, to let them win over its resource's.
  std::vector<std::pair<size_t, size_t>> own_rows;

  bool has(uint32_t at, uint32_t wanted) const {
    auto [first, last] = own_rows[at];
    for (size_t i = first; i < last; ++i)
      if (found[i].second.key == wanted) return true;
    return false;
  }

  void attribute(const Keys &keys, uint32_t at, const Attribute &a, bool null_text = false) {
    row.values.push_back(at);
    key.push(keys[a.key].text);
    a.value.known && !null_text ? text.push(a.value.text) : text.push_null();
    a.value.list ? items.push(a.value.items) : items.push_null();
    nested.values.push(a.value.nested);
  }

  // Every attribute as a row, for the caller to choose fields from.
  void all_rows(const Keys &keys) {
    for (auto &[at, a] : found) attribute(keys, at, a);
  }

  // Each field's text from the first key of its chain that has a scalar value (an array or
  // key-value list there is not a session id: its text counts as absent), as a column
  // `_<field>` of the spans, as `otlp._chosen` does it. Chosen span by span, as soon as a
  // span's attributes are all known (its resource's too), while they are still in the cache;
  // the columns are dropped if the batch's rows turn out to be all for the caller
  // (`all_rows`).
  std::vector<std::unique_ptr<Text>> fields;
  std::vector<int> best;
  std::vector<std::string_view> chosen;

  void start_fields(const Fields &names) {
    start.numbers_only();
    end.numbers_only();
    const std::string_view counts = "_tokens";  // token counts: whole numbers, mostly
    for (auto &name : names.names) {
      fields.push_back(std::make_unique<Text>());
      fields.back()->name = name;
      if (name.size() > counts.size() &&
          name.compare(name.size() - counts.size(), counts.size(), counts) == 0)
        fields.back()->numbers_only();
    }
    best.resize(fields.size());
    chosen.resize(fields.size());
  }

  void consider(const Keys &keys, const Attribute &a) {
    const Fields::Key *field = keys[a.key].field;
    if (!field || !a.value.known || a.value.nested) return;
    for (auto [f, rank] : field->chains) {
      if (rank < best[size_t(f)]) {
        best[size_t(f)] = rank;
        chosen[size_t(f)] = a.value.text;
      }
    }
  }

  // Span `at`'s fields, from found[first, last) and those of `shared` whose key it has not.
  void choose(const Keys &keys, uint32_t at, size_t first, size_t last,
              const std::vector<std::pair<uint32_t, Attribute>> *shared = nullptr) {
    std::fill(best.begin(), best.end(), INT32_MAX);
    for (size_t i = first; i < last; ++i) consider(keys, found[i].second);
    if (shared)
      for (auto &[_, a] : *shared)
        if (!has(at, a.key)) consider(keys, a);
    for (size_t f = 0; f < fields.size(); ++f)
      best[f] == INT32_MAX ? fields[f]->push_null() : fields[f]->push(chosen[f]);
  }

  // The chosen fields as columns of the spans; rows only for the attributes still read as
  // rows (tags, metadata), and the count of nested values under text keys.
  int64_t chosen_rows(const Keys &keys) {
    for (auto &column : fields) spans->columns.push_back(std::move(column));
    fields.clear();
    int64_t nested_text = 0;
    for (auto &[at, a] : found) {
      const Keys::Key &key = keys[a.key];
      bool text_key = key.field && key.field->text;
      if (a.value.nested && text_key) ++nested_text;
      if ((key.field && key.field->tag) || key.prefixed)
        attribute(keys, at, a, a.value.nested && text_key);
    }
    return nested_text;
  }
};

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

// The rows of a read batch, finished: resource attributes after the spans' own, the chosen
// fields kept (unless a JSON-object attribute takes part: then every attribute is a row). The
// count of nested values under text keys, or -1 when the fields were left to the caller.
int64_t finish(Batch &out, const Keys &keys) {
  for (auto &[at, a] : out.shared)
    if (!out.has(at, a.key)) out.found.emplace_back(at, std::move(a));
  for (auto &[at, a] : out.found) {
    const Fields::Key *key = keys[a.key].field;
    if (key && key->object) {
      out.all_rows(keys);
      return -1;
    }
  }
  return out.chosen_rows(keys);
}

// (spans, attributes, nested text count | None, whether every id is lowercase hex)
PyObject *result(Batch &out, int64_t nested_text) {
  PyObject *spans = exported(out.spans, out.spans_written);
  PyObject *attrs = exported(out.attrs, int64_t(out.row.values.size()));
  if (!spans || !attrs) {
    Py_XDECREF(spans);
    Py_XDECREF(attrs);
    return nullptr;
  }
  PyObject *ids_hex = out.ids_hex ? Py_True : Py_False;
  if (nested_text < 0) return Py_BuildValue("(NNOO)", spans, attrs, Py_None, ids_hex);
  return Py_BuildValue("(NNLO)", spans, attrs, (long long)nested_text, ids_hex);
}

}  // namespace
