// Image files for the detector: JPEG (libjpeg), PNG (libpng) and BMP (our own reader) decoded to RGB,
// PNG writing, and quad outlines drawn on an image for annotated output.
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <csetjmp>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

// jpeglib.h needs size_t and FILE declared before it.
#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

#include "eastrt/detector_ops.h"
#include "eastrt/error.h"

namespace eastrt::east {
namespace {

// Both libraries report fatal errors through a callback that must not return. We longjmp back to the
// decoding function, which releases the library's state and returns the message; the exception is thrown
// only after that, so no C++ exception ever crosses C frames. Everything the decoder fills lives in a
// DecodeState owned by the caller, so no local object with a destructor is skipped by the longjmp.
struct DecodeState {
  Image image;
  std::vector<uint8_t> scratch;
  std::vector<uint8_t*> rows;
  char message[JMSG_LENGTH_MAX + 200] = {};
};

void check_dimensions(DecodeState& state, int64_t width, int64_t height) {
  if (width <= 0 || height <= 0 || width * height > kMaxImagePixels)
    std::snprintf(state.message, sizeof(state.message), "unsupported image size %lldx%lld (at most %lld pixels)",
                  static_cast<long long>(width), static_cast<long long>(height),
                  static_cast<long long>(kMaxImagePixels));
}

// ---- JPEG ----

struct JpegErrors {
  jpeg_error_mgr base;
  std::jmp_buf jump;
  DecodeState* state;
};

[[noreturn]] void jpeg_fail(j_common_ptr cinfo) {
  auto* errors = reinterpret_cast<JpegErrors*>(cinfo->err);
  char text[JMSG_LENGTH_MAX];
  (*cinfo->err->format_message)(cinfo, text);
  std::snprintf(errors->state->message, sizeof(errors->state->message), "corrupt JPEG: %s", text);
  std::longjmp(errors->jump, 1);
}

// Warnings are silent, except running out of data: libjpeg would pad the image with grey and go on,
// but a truncated file is an error here.
void jpeg_message(j_common_ptr cinfo, int level) {
  if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) jpeg_fail(cinfo);
}

bool decode_jpeg(const uint8_t* data, size_t size, DecodeState* state) {
  jpeg_decompress_struct cinfo;
  JpegErrors errors;
  cinfo.err = jpeg_std_error(&errors.base);
  errors.base.error_exit = jpeg_fail;
  errors.base.emit_message = jpeg_message;
  errors.state = state;
  if (setjmp(errors.jump)) {
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, data, static_cast<unsigned long>(size));
  jpeg_read_header(&cinfo, TRUE);
  check_dimensions(*state, cinfo.image_width, cinfo.image_height);
  if (state->message[0]) {
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  const bool cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
  cinfo.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
  jpeg_start_decompress(&cinfo);
  if (cinfo.output_components != (cmyk ? 4 : 3)) {
    std::snprintf(state->message, sizeof(state->message), "unsupported JPEG colour space");
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  Image& image = state->image;
  image.width = static_cast<int>(cinfo.output_width);
  image.height = static_cast<int>(cinfo.output_height);
  image.rgb.assign(static_cast<size_t>(image.width) * image.height * 3, 0);
  state->scratch.assign(static_cast<size_t>(image.width) * 4, 0);
  while (cinfo.output_scanline < cinfo.output_height) {
    uint8_t* out = image.rgb.data() + static_cast<size_t>(cinfo.output_scanline) * image.width * 3;
    JSAMPROW row = cmyk ? state->scratch.data() : out;
    jpeg_read_scanlines(&cinfo, &row, 1);
    if (cmyk) {
      // Adobe's inverted CMYK, converted as OpenCV's icvCvt_CMYK2BGR_8u_C4C3R does.
      for (int x = 0; x < image.width; ++x) {
        const int k = row[4 * x + 3];
        for (int c = 0; c < 3; ++c) out[3 * x + c] = static_cast<uint8_t>(k - (((255 - row[4 * x + c]) * k) >> 8));
      }
    }
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return true;
}

// ---- PNG ----

struct PngInput {
  const uint8_t* data;
  size_t size;
  size_t offset;
};

[[noreturn]] void png_fail(png_structp png, png_const_charp text) {
  auto* state = static_cast<DecodeState*>(png_get_error_ptr(png));
  std::snprintf(state->message, sizeof(state->message), "corrupt PNG: %s", text);
  png_longjmp(png, 1);
}

void png_ignore_warning(png_structp, png_const_charp) {}

void png_read_bytes(png_structp png, png_bytep out, png_size_t count) {
  auto* input = static_cast<PngInput*>(png_get_io_ptr(png));
  if (count > input->size - input->offset) png_error(png, "file is truncated");
  std::memcpy(out, input->data + input->offset, count);
  input->offset += count;
}

bool decode_png(const uint8_t* data, size_t size, DecodeState* state) {
  PngInput input{data, size, 0};
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, state, png_fail, png_ignore_warning);
  if (!png) {
    std::snprintf(state->message, sizeof(state->message), "out of memory");
    return false;
  }
  png_infop info = png_create_info_struct(png);
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    return false;
  }
  if (!info) png_error(png, "out of memory");
  png_set_read_fn(png, &input, png_read_bytes);
  png_read_info(png, info);
  check_dimensions(*state, png_get_image_width(png, info), png_get_image_height(png, info));
  if (state->message[0]) png_longjmp(png, 1);
  // cv2.imread(IMREAD_COLOR): palette and low-depth grey expanded, 16-bit stripped to the high byte,
  // alpha dropped (not composited), grey replicated to RGB.
  png_set_expand(png);
  png_set_strip_16(png);
  png_set_strip_alpha(png);
  png_set_gray_to_rgb(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  Image& image = state->image;
  image.width = static_cast<int>(png_get_image_width(png, info));
  image.height = static_cast<int>(png_get_image_height(png, info));
  if (png_get_rowbytes(png, info) != static_cast<size_t>(image.width) * 3) png_error(png, "unexpected row layout");
  image.rgb.assign(static_cast<size_t>(image.width) * image.height * 3, 0);
  state->rows.resize(image.height);
  for (int y = 0; y < image.height; ++y) state->rows[y] = image.rgb.data() + static_cast<size_t>(y) * image.width * 3;
  png_read_image(png, state->rows.data());
  png_read_end(png, nullptr);
  png_destroy_read_struct(&png, &info, nullptr);
  return true;
}

// ---- BMP ----

uint32_t le32(const uint8_t* p) { return p[0] | (p[1] << 8) | (p[2] << 16) | (uint32_t(p[3]) << 24); }
uint16_t le16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }

bool decode_bmp(const uint8_t* data, size_t size, DecodeState* state) {
  auto fail = [&](const char* text) {
    std::snprintf(state->message, sizeof(state->message), "%s", text);
    return false;
  };
  if (size < 14 + 40) return fail("truncated BMP header");
  const uint32_t pixel_offset = le32(data + 10);
  const uint32_t header_size = le32(data + 14);
  if (header_size < 40 || header_size > 124) return fail("unsupported BMP header (only BITMAPINFOHEADER and later)");
  const int64_t width = static_cast<int32_t>(le32(data + 18));
  const int64_t signed_height = static_cast<int32_t>(le32(data + 22));
  const uint16_t bits = le16(data + 28);
  const uint32_t compression = le32(data + 30);
  if (bits != 24 && bits != 32) return fail("unsupported BMP: only 24- and 32-bit pixels");
  // BI_RGB, or BI_BITFIELDS with the plain 8-8-8 masks (what most writers emit for 32-bit).
  if (compression == 3) {
    if (bits != 32 || size < 14 + 40 + 12 || le32(data + 54) != 0xFF0000u || le32(data + 58) != 0xFF00u ||
        le32(data + 62) != 0xFFu)
      return fail("unsupported BMP: bit fields other than 8-8-8");
  } else if (compression != 0) {
    return fail("unsupported BMP: compressed pixels");
  }
  const bool top_down = signed_height < 0;
  const int64_t height = top_down ? -signed_height : signed_height;
  check_dimensions(*state, width, height);
  if (state->message[0]) return false;
  const int64_t bytes_per_pixel = bits / 8;
  const int64_t stride = (width * bits + 31) / 32 * 4;
  // The last row's padding may be missing; its pixels may not.
  if (static_cast<int64_t>(pixel_offset) + stride * (height - 1) + width * bytes_per_pixel > static_cast<int64_t>(size))
    return fail("truncated BMP pixel data");
  Image& image = state->image;
  image.width = static_cast<int>(width);
  image.height = static_cast<int>(height);
  image.rgb.resize(static_cast<size_t>(width * height * 3));
  for (int64_t y = 0; y < height; ++y) {
    const uint8_t* row = data + pixel_offset + stride * (top_down ? y : height - 1 - y);
    uint8_t* out = image.rgb.data() + y * width * 3;
    for (int64_t x = 0; x < width; ++x) {
      out[3 * x + 0] = row[bytes_per_pixel * x + 2];
      out[3 * x + 1] = row[bytes_per_pixel * x + 1];
      out[3 * x + 2] = row[bytes_per_pixel * x + 0];
    }
  }
  return true;
}

// ---- Writing and drawing ----

struct WriteState {
  std::vector<const uint8_t*> rows;
  char message[256] = {};
};

[[noreturn]] void png_write_fail(png_structp png, png_const_charp text) {
  auto* state = static_cast<WriteState*>(png_get_error_ptr(png));
  std::snprintf(state->message, sizeof(state->message), "%s", text);
  png_longjmp(png, 1);
}

bool encode_png(std::FILE* file, const Image& image, WriteState* state) {
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, state, png_write_fail, png_ignore_warning);
  if (!png) {
    std::snprintf(state->message, sizeof(state->message), "out of memory");
    return false;
  }
  png_infop info = png_create_info_struct(png);
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    return false;
  }
  if (!info) png_error(png, "out of memory");
  png_init_io(png, file);
  png_set_IHDR(png, info, image.width, image.height, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  state->rows.resize(image.height);
  for (int y = 0; y < image.height; ++y) state->rows[y] = image.rgb.data() + static_cast<size_t>(y) * image.width * 3;
  png_write_image(png, const_cast<png_bytepp>(state->rows.data()));
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return true;
}

void put_square(Image& image, int cx, int cy, int thickness, const std::array<uint8_t, 3>& color) {
  const int lo = -(thickness - 1) / 2, hi = thickness / 2;
  for (int y = std::max(0, cy + lo); y <= std::min(image.height - 1, cy + hi); ++y)
    for (int x = std::max(0, cx + lo); x <= std::min(image.width - 1, cx + hi); ++x)
      std::copy(color.begin(), color.end(), image.rgb.begin() + (static_cast<size_t>(y) * image.width + x) * 3);
}

int to_pixel(float v) {
  if (!std::isfinite(v)) return 0;
  return static_cast<int>(std::lround(std::clamp(v, -1e8f, 1e8f)));
}

}  // namespace

Image decode_image(const uint8_t* data, size_t size, const std::string& name) {
  DecodeState state;
  bool ok = false;
  if (size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF) {
    ok = decode_jpeg(data, size, &state);
  } else if (size >= 8 && std::memcmp(data, "\x89PNG\r\n\x1a\n", 8) == 0) {
    ok = decode_png(data, size, &state);
  } else if (size >= 2 && data[0] == 'B' && data[1] == 'M') {
    ok = decode_bmp(data, size, &state);
  } else {
    std::snprintf(state.message, sizeof(state.message), "not a JPEG, PNG or BMP image (%zu bytes)", size);
  }
  if (!ok) throw_error("image '", name, "': ", state.message);
  return std::move(state.image);
}

Image decode_image(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw_error("image '", path, "': cannot open: ", std::strerror(errno));
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw_error("image '", path, "': read failed");
  return decode_image(bytes.data(), bytes.size(), path);
}

void write_png(const std::string& path, const Image& image) {
  EASTRT_CHECK(image.width > 0 && image.height > 0 &&
                   image.rgb.size() == static_cast<size_t>(image.width) * image.height * 3,
               "write_png '", path, "': image is ", image.width, "x", image.height, " with ", image.rgb.size(),
               " bytes");
  std::FILE* file = std::fopen(path.c_str(), "wb");
  if (!file) throw_error("write_png '", path, "': cannot create: ", std::strerror(errno));
  WriteState state;
  const bool ok = encode_png(file, image, &state);
  const bool closed = std::fclose(file) == 0;
  if (!ok || !closed) {
    std::remove(path.c_str());
    throw_error("write_png '", path, "': ", ok ? "write failed" : state.message);
  }
}

void draw_quads(Image& image, const std::vector<Quad>& quads, std::array<uint8_t, 3> color, int thickness) {
  thickness = std::max(1, thickness);
  for (const Quad& quad : quads) {
    for (int i = 0; i < 4; ++i) {
      const Point& a = quad.points[i];
      const Point& b = quad.points[(i + 1) % 4];
      int x0 = to_pixel(a.x), y0 = to_pixel(a.y);
      const int x1 = to_pixel(b.x), y1 = to_pixel(b.y);
      // Bresenham; far-away endpoints make long loops, so skip edges wholly outside the image.
      if ((x0 < 0 && x1 < 0) || (y0 < 0 && y1 < 0) || (x0 >= image.width && x1 >= image.width) ||
          (y0 >= image.height && y1 >= image.height) || std::abs(x1 - x0) > 100000 || std::abs(y1 - y0) > 100000)
        continue;
      const int dx = std::abs(x1 - x0), dy = -std::abs(y1 - y0);
      const int sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
      int err = dx + dy;
      while (true) {
        put_square(image, x0, y0, thickness, color);
        if (x0 == x1 && y0 == y1) break;
        const int e2 = 2 * err;
        if (e2 >= dy) err += dy, x0 += sx;
        if (e2 <= dx) err += dx, y0 += sy;
      }
    }
  }
}

std::vector<std::string> image_files_in(const std::string& dir) {
  namespace fs = std::filesystem;
  auto is_image = [](const fs::path& p) {
    std::string ext = p.extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
    return ext == ".jpg" || ext == ".jpeg" || ext == ".png" || ext == ".bmp";
  };
  auto number = [](const std::string& name) {  // the first run of digits, capped; -1 without one
    const size_t i = name.find_first_of("0123456789");
    if (i == std::string::npos) return -1L;
    long n = 0;
    for (size_t j = i; j < name.size() && std::isdigit(static_cast<unsigned char>(name[j])) && n < 100000000; ++j)
      n = n * 10 + (name[j] - '0');
    return n;
  };
  std::vector<std::pair<long, std::string>> found;  // (number, name) sorts naturally
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.is_regular_file() && is_image(entry.path()))
      found.emplace_back(number(entry.path().filename().string()), entry.path().filename().string());
  std::sort(found.begin(), found.end());
  std::vector<std::string> files;
  for (const auto& [n, name] : found) files.push_back((fs::path(dir) / name).string());
  return files;
}

}  // namespace eastrt::east
