/*
 * Fetch.java — export the agent operation records of one time window from a CC-FS server
 * (ccfs or any CC-FS compatible one): generate, wait, download, verify.
 *
 * JDK 17 or later, nothing else (java.net.http.HttpClient, javax.crypto.Mac). Runs as a
 * single-file source program, no compile step:
 *
 * Usage:
 *   export CCFS_SERVER=https://127.0.0.1:28443   # the server's base URL
 *   export CCFS_AK=<appId> CCFS_SK=<secretKey>    # the developer's credentials
 *   export CCFS_CA_CERT=ccfs-data/tls/cert.pem    # optional: PEM of a self-signed server
 *   java Fetch.java "2024-05-01 00:00:00" "2024-05-02 00:00:00" exports
 *
 *   java Fetch.java --self-test   # checks the signer against the test vectors of SPEC section 3
 *
 * Optional: CCFS_CALLBACK_URL (default https://127.0.0.1:9/unused: this program polls the
 * status extension instead of receiving the callback), CCFS_TIMEOUT (seconds to wait for the
 * export, default 600).
 *
 * Signing: auth-v2 over content-type;host with a SECONDS timestamp (yyyy-MM-ddTHH:mm:ssZ),
 * as public Java clients do. See docs/integrating.md for the recipe.
 *
 * Prints, on success (stdout):
 *   responseId  <32 hex>
 *   file        <yyyyMMdd_responseId.zip>
 *   size        <bytes>
 *   recordCount <records in the export>
 *   sha256      <hex> (verified)
 *   saved       <path of the zip>
 * Progress goes to stderr. Exit status: 0 done, 1 failed, 2 wrong usage.
 */

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.GeneralSecurityException;
import java.security.KeyStore;
import java.security.MessageDigest;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.regex.Pattern;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;

public class Fetch {
    static final String JSON_TYPE = "application/json;charset=UTF-8";
    static final String BASE_PATH = "/CCFS/resource/ccfs/";
    static final Pattern TIME = Pattern.compile("\\d{4}-\\d{2}-\\d{2} \\d{2}:\\d{2}:\\d{2}");
    static final Pattern NAME = Pattern.compile("[0-9]{8}_[0-9a-f]{32}\\.zip");
    static final DateTimeFormatter SECONDS =
            DateTimeFormatter.ofPattern("yyyy-MM-dd'T'HH:mm:ss'Z'").withZone(ZoneOffset.UTC);

    /** A failure to report on stderr, exit status 1. */
    static class Failure extends Exception {
        Failure(String message) {
            super(message);
        }
    }

    // ---- auth-v2 ----------------------------------------------------------------------------

    /** NORM: every UTF-8 byte outside A-Z a-z 0-9 - . _ ~ becomes %XX (upper-case hex). */
    static String norm(String s) {
        StringBuilder out = new StringBuilder();
        for (byte b : s.getBytes(StandardCharsets.UTF_8)) {
            int c = b & 0xff;
            if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
                    || c == '-' || c == '.' || c == '_' || c == '~') {
                out.append((char) c);
            } else {
                out.append('%').append(String.format("%02X", c));
            }
        }
        return out.toString();
    }

    /** HEX(HMAC-SHA256(key, message)) over the UTF-8 bytes of two strings. */
    static String hmacHex(String key, String message) throws GeneralSecurityException {
        Mac mac = Mac.getInstance("HmacSHA256");
        mac.init(new SecretKeySpec(key.getBytes(StandardCharsets.UTF_8), "HmacSHA256"));
        return HexFormat.of().formatHex(mac.doFinal(message.getBytes(StandardCharsets.UTF_8)));
    }

    /**
     * The Authorization value of a request. {@code headers}: the headers to sign with their
     * values as sent; {@code query}: the query parameters, or an empty map (the CC-FS
     * interfaces have none); {@code body}: the exact body sent.
     */
    static String authorization(String ak, String sk, String timestamp, String method,
            String path, Map<String, String> query, Map<String, String> headers, String body)
            throws GeneralSecurityException {
        TreeMap<String, String> signed = new TreeMap<>();
        headers.forEach((k, v) -> signed.put(k.toLowerCase(Locale.ROOT), v));
        String signedHeaders = String.join(";", signed.keySet());
        String prefix = "auth-v2/" + ak + "/" + timestamp + "/" + signedHeaders;
        // The signing key is the 64-character hex STRING, not the raw 32 bytes.
        String signingKey = hmacHex(sk, prefix);
        StringBuilder canonical = new StringBuilder();
        canonical.append(method.toUpperCase(Locale.ROOT)).append('\n');
        canonical.append(path).append('\n');
        if (!query.isEmpty()) { // with no query the line is left out entirely
            List<String> pairs = new ArrayList<>();
            query.forEach((k, v) -> pairs.add(norm(k) + "=" + norm(v)));
            pairs.sort(null);
            canonical.append(String.join("&", pairs)).append('\n');
        }
        canonical.append(signedHeaders).append('\n');
        List<String> lines = new ArrayList<>();
        signed.forEach((k, v) -> lines.add(norm(k) + ":" + norm(v.trim())));
        lines.sort(null);
        canonical.append(String.join("\n", lines)).append('\n');
        if (!body.isEmpty()) {
            canonical.append(norm(body));
        }
        return prefix + "/" + hmacHex(signingKey, canonical.toString());
    }

    static void selfTest() throws Exception {
        String body = "{\"request\":{\"version\":\"2.0\"},\"msgBody\":{\"beginTime\":\"2024-05-01 "
                + "00:00:00\",\"endTime\":\"2024-05-02 00:00:00\",\"callBackURL\":"
                + "\"https://example.com/ccfs/cb\"}}";
        String path = BASE_PATH + "queryAgentOprInfoData";
        String ak = "globalaktest", sk = "1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik9ol0p";
        String host = "10.22.26.181:28080";
        String v1 = authorization(ak, sk, "2021-08-31T09:38:50.872Z", "POST", path, Map.of(),
                Map.of("content-length", "151", "content-type", JSON_TYPE, "host", host), body);
        check("V1", v1, "auth-v2/globalaktest/2021-08-31T09:38:50.872Z/content-length;"
                + "content-type;host/0dced0b657b515e45538b8f6815a609265142fde2924e90f94c281b919924771");
        String v2 = authorization(ak, sk, "2021-08-31T09:38:50Z", "POST", path, Map.of(),
                Map.of("host", host), body);
        check("V2", v2, "auth-v2/globalaktest/2021-08-31T09:38:50Z/host/"
                + "4f8d9f430bc4e9d50201e11eb6b2400f5a7ed4148752453b99c963519886c724");
        String v3 = authorization(ak, sk, "2021-08-31T09:38:50Z", "GET", "/CCFS/resource/ccfs/x",
                Map.of("b", "x y", "a", "1"), Map.of("host", host), "");
        check("V3", v3, "auth-v2/globalaktest/2021-08-31T09:38:50Z/host/"
                + "a385bda497e647f1f5da89dbfea86a1063dc61cbbf94792eb59a9624916477ef");
        System.out.println("self-test: V1, V2 and V3 signatures match SPEC section 3");
    }

    static void check(String name, String got, String want) throws Failure {
        if (!got.equals(want)) {
            throw new Failure("self-test " + name + ": got " + got);
        }
    }

    // ---- requests ---------------------------------------------------------------------------

    final String server;
    final URI base;
    final String host;
    final String ak;
    final String sk;
    final HttpClient http;

    Fetch(String server, String ak, String sk, String caCert) throws Exception {
        this.server = server.replaceAll("/+$", "");
        this.base = URI.create(this.server);
        if (base.getHost() == null) {
            throw new Failure("CCFS_SERVER is not a URL: " + server);
        }
        // HttpClient sets Host itself (it may not be set by hand): host, plus ":port" unless
        // the port is the scheme's default. That is the value signed.
        int port = base.getPort();
        boolean defaultPort = port == -1
                || port == ("https".equalsIgnoreCase(base.getScheme()) ? 443 : 80);
        this.host = defaultPort ? base.getHost() : base.getHost() + ":" + port;
        this.ak = ak;
        this.sk = sk;
        HttpClient.Builder b = HttpClient.newBuilder()
                .version(HttpClient.Version.HTTP_1_1) // Host as computed above
                .connectTimeout(Duration.ofSeconds(10));
        if (caCert != null) {
            b.sslContext(trusting(Path.of(caCert)));
        }
        this.http = b.build();
    }

    /** An SSLContext that trusts the certificates of a PEM file (a self-signed server). */
    static SSLContext trusting(Path pem) throws Exception {
        KeyStore store = KeyStore.getInstance(KeyStore.getDefaultType());
        store.load(null, null);
        try (InputStream in = Files.newInputStream(pem)) {
            int i = 0;
            for (Certificate c : CertificateFactory.getInstance("X.509").generateCertificates(in)) {
                store.setCertificateEntry("ca" + i++, c);
            }
            if (i == 0) {
                throw new Failure("CCFS_CA_CERT " + pem + ": no certificate");
            }
        } catch (IOException | GeneralSecurityException e) {
            throw new Failure("CCFS_CA_CERT " + pem + ": " + e.getMessage());
        }
        TrustManagerFactory tmf =
                TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        tmf.init(store);
        SSLContext ctx = SSLContext.getInstance("TLS");
        ctx.init(null, tmf.getTrustManagers(), null);
        return ctx;
    }

    /** Sends a signed request with {"request":{"version":"2.0"},"msgBody":msgBody}. */
    <T> HttpResponse<T> post(String iface, Map<String, String> msgBody,
            HttpResponse.BodyHandler<T> handler, Duration timeout) throws Exception {
        String path = BASE_PATH + iface;
        StringBuilder body = new StringBuilder("{\"request\":{\"version\":\"2.0\"},\"msgBody\":{");
        String sep = "";
        for (Map.Entry<String, String> e : msgBody.entrySet()) {
            body.append(sep).append(jsonString(e.getKey())).append(':')
                    .append(jsonString(e.getValue()));
            sep = ",";
        }
        body.append("}}");
        String timestamp = SECONDS.format(Instant.now());
        String auth = authorization(ak, sk, timestamp, "POST", path, Map.of(),
                Map.of("content-type", JSON_TYPE, "host", host), body.toString());
        HttpRequest request = HttpRequest.newBuilder(URI.create(server + path))
                .timeout(timeout)
                .header("Content-Type", JSON_TYPE)
                .header("Authorization", auth)
                .POST(HttpRequest.BodyPublishers.ofString(body.toString(), StandardCharsets.UTF_8))
                .build();
        try {
            return http.send(request, handler);
        } catch (IOException e) {
            throw new Failure(iface + ": no answer from " + server + ": " + e);
        }
    }

    /** A JSON interface: returns resultData, or fails with the result code. */
    Map<String, Object> call(String iface, Map<String, String> msgBody) throws Exception {
        HttpResponse<byte[]> r =
                post(iface, msgBody, HttpResponse.BodyHandlers.ofByteArray(), Duration.ofSeconds(60));
        Object data = envelopeData(iface, r.statusCode(), r.body());
        if (!(data instanceof Map)) {
            throw new Failure(iface + ": resultData is not an object: " + data);
        }
        @SuppressWarnings("unchecked")
        Map<String, Object> map = (Map<String, Object>) data;
        return map;
    }

    static Object envelopeData(String iface, int status, byte[] raw) throws Failure {
        String text = new String(raw, StandardCharsets.UTF_8);
        Object answer;
        try {
            answer = new Json(text).parse();
        } catch (RuntimeException e) {
            answer = null;
        }
        if (!(answer instanceof Map) || !(((Map<?, ?>) answer).get("resultCode") instanceof String)) {
            throw new Failure(iface + ": not a CC-FS answer (HTTP " + status + "): "
                    + text.substring(0, Math.min(300, text.length())));
        }
        Map<?, ?> envelope = (Map<?, ?>) answer;
        Object code = envelope.get("resultCode");
        if (!"0".equals(code)) {
            throw new Failure(iface + ": HTTP " + status + ", resultCode " + code + ": "
                    + envelope.get("resultDesc"));
        }
        return envelope.get("resultData");
    }

    void fetch(String begin, String end, Path outDir, String callbackUrl, double timeoutSecs)
            throws Exception {
        // 1. Generate.
        Map<String, String> generate = new LinkedHashMap<>();
        generate.put("beginTime", begin);
        generate.put("endTime", end);
        generate.put("callBackURL", callbackUrl);
        Object id = call("queryAgentOprInfoData", generate).get("responseId");
        if (!(id instanceof String)) {
            throw new Failure("generate: no responseId");
        }
        String responseId = (String) id;
        System.err.println("generated " + responseId + ", waiting");

        // 2. Wait: poll the status extension until the job is finished.
        long deadline = System.nanoTime() + (long) (timeoutSecs * 1e9);
        Map<String, Object> job;
        while (true) {
            job = call("queryAgentOprInfoStatus", Map.of("responseId", responseId));
            Object state = job.get("state");
            if ("succeeded".equals(state)) {
                break;
            }
            if ("failed".equals(state) || "expired".equals(state)
                    || "cancelled".equals(state)) {
                throw new Failure("export " + responseId + " " + state + ": " + job.get("error"));
            }
            if (!"queued".equals(state) && !"running".equals(state)) {
                throw new Failure("status: unexpected state " + state);
            }
            if (System.nanoTime() > deadline) {
                throw new Failure("export " + responseId + " still " + state + " after "
                        + timeoutSecs + "s");
            }
            Thread.sleep(300);
        }
        Object nameValue = job.get("agentOprInfoFileName");
        if (!(nameValue instanceof String) || !NAME.matcher((String) nameValue).matches()) {
            throw new Failure("status: bad file name " + nameValue);
        }
        String name = (String) nameValue;

        // 3. Download: success is told by the Content-Type, an error is a JSON envelope.
        Files.createDirectories(outDir);
        Path path = outDir.resolve(name);
        Path part = outDir.resolve(name + ".part");
        HttpResponse<InputStream> r = post("downloadAgentOprInfoFile",
                Map.of("agentOprInfoFileName", name), HttpResponse.BodyHandlers.ofInputStream(),
                Duration.ofHours(1));
        String contentType = r.headers().firstValue("Content-Type").orElse("");
        try (InputStream in = r.body()) {
            if (!contentType.toLowerCase(Locale.ROOT).startsWith("application/octet-stream")) {
                envelopeData("download", r.statusCode(), in.readNBytes(65536));
                throw new Failure("download: HTTP " + r.statusCode() + ", Content-Type "
                        + contentType);
            }
            if (r.statusCode() != 200) {
                throw new Failure("download: HTTP " + r.statusCode());
            }
            String want = r.headers().firstValue("X-Checksum-Sha256").orElse("")
                    .toLowerCase(Locale.ROOT);
            if (want.isEmpty()) {
                throw new Failure("download: no X-Checksum-Sha256 header");
            }
            MessageDigest digest = MessageDigest.getInstance("SHA-256");
            long size = 0;
            try (OutputStream out = Files.newOutputStream(part)) {
                byte[] buf = new byte[1 << 16];
                for (int n; (n = in.read(buf)) > 0; ) {
                    digest.update(buf, 0, n);
                    out.write(buf, 0, n);
                    size += n;
                }
            }
            String got = HexFormat.of().formatHex(digest.digest());
            if (!got.equals(want)) {
                Files.deleteIfExists(part);
                throw new Failure("download: SHA-256 " + got
                        + " does not match X-Checksum-Sha256 " + want);
            }
            Files.move(part, path, StandardCopyOption.REPLACE_EXISTING);

            System.out.println("responseId  " + responseId);
            System.out.println("file        " + name);
            System.out.println("size        " + size);
            System.out.println("recordCount " + job.get("recordCount"));
            System.out.println("sha256      " + got + " (verified)");
            System.out.println("saved       " + path);
        }
    }

    public static void main(String[] args) {
        try {
            System.exit(run(args));
        } catch (Failure e) {
            System.err.println("Fetch: " + e.getMessage());
            System.exit(1);
        } catch (Exception e) {
            System.err.println("Fetch: " + e);
            System.exit(1);
        }
    }

    static int run(String[] args) throws Exception {
        if (args.length == 1 && args[0].equals("--self-test")) {
            selfTest();
            return 0;
        }
        if (args.length != 3) {
            System.err.println("Usage:\n"
                    + "  export CCFS_SERVER=https://127.0.0.1:28443 CCFS_AK=<appId> CCFS_SK=<secretKey>\n"
                    + "  export CCFS_CA_CERT=ccfs-data/tls/cert.pem    # optional\n"
                    + "  java Fetch.java \"2024-05-01 00:00:00\" \"2024-05-02 00:00:00\" exports\n"
                    + "  java Fetch.java --self-test");
            return 2;
        }
        for (String t : new String[] {args[0], args[1]}) {
            if (!TIME.matcher(t).matches()) {
                throw new Failure("times are yyyy-MM-dd HH:mm:ss, not: " + t);
            }
        }
        String server = env("CCFS_SERVER", "the server URL, e.g. https://127.0.0.1:28443");
        String ak = env("CCFS_AK", "the appId");
        String sk = env("CCFS_SK", "the secret key");
        String ca = System.getenv("CCFS_CA_CERT");
        String callback = System.getenv("CCFS_CALLBACK_URL");
        String timeout = System.getenv("CCFS_TIMEOUT");
        new Fetch(server, ak, sk, ca == null || ca.isEmpty() ? null : ca).fetch(args[0], args[1],
                Path.of(args[2]),
                callback == null || callback.isEmpty() ? "https://127.0.0.1:9/unused" : callback,
                timeout == null || timeout.isEmpty() ? 600 : Double.parseDouble(timeout));
        return 0;
    }

    static String env(String key, String hint) throws Failure {
        String v = System.getenv(key);
        if (v == null || v.isEmpty()) {
            throw new Failure("set " + key + " to " + hint);
        }
        return v;
    }

    // ---- JSON -------------------------------------------------------------------------------

    /** A JSON string literal. */
    static String jsonString(String s) {
        StringBuilder out = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            switch (c) {
                case '"' -> out.append("\\\"");
                case '\\' -> out.append("\\\\");
                case '\n' -> out.append("\\n");
                case '\r' -> out.append("\\r");
                case '\t' -> out.append("\\t");
                default -> {
                    if (c < 0x20) {
                        out.append(String.format("\\u%04x", (int) c));
                    } else {
                        out.append(c);
                    }
                }
            }
        }
        return out.append('"').toString();
    }

    /**
     * A small JSON reader: objects become Maps, arrays Lists, strings Strings, numbers Longs
     * (or Doubles), and true/false/null Booleans and null. Throws on malformed input.
     */
    static final class Json {
        private final String s;
        private int i;

        Json(String s) {
            this.s = s;
        }

        Object parse() {
            Object v = value();
            ws();
            if (i != s.length()) {
                throw new IllegalArgumentException("trailing characters at " + i);
            }
            return v;
        }

        private void ws() {
            while (i < s.length() && " \t\r\n".indexOf(s.charAt(i)) >= 0) {
                i++;
            }
        }

        private char next() {
            if (i >= s.length()) {
                throw new IllegalArgumentException("unexpected end");
            }
            return s.charAt(i++);
        }

        private void expect(char c) {
            if (next() != c) {
                throw new IllegalArgumentException("expected " + c + " at " + (i - 1));
            }
        }

        private Object value() {
            ws();
            char c = s.charAt(i);
            switch (c) {
                case '{': {
                    i++;
                    Map<String, Object> m = new LinkedHashMap<>();
                    ws();
                    if (s.charAt(i) == '}') {
                        i++;
                        return m;
                    }
                    while (true) {
                        ws();
                        String k = string();
                        ws();
                        expect(':');
                        m.put(k, value());
                        ws();
                        if (next() == '}') {
                            return m;
                        }
                        i--;
                        expect(',');
                    }
                }
                case '[': {
                    i++;
                    List<Object> l = new ArrayList<>();
                    ws();
                    if (s.charAt(i) == ']') {
                        i++;
                        return l;
                    }
                    while (true) {
                        l.add(value());
                        ws();
                        if (next() == ']') {
                            return l;
                        }
                        i--;
                        expect(',');
                    }
                }
                case '"':
                    return string();
                default:
                    for (String word : new String[] {"true", "false", "null"}) {
                        if (s.startsWith(word, i)) {
                            i += word.length();
                            return word.equals("null") ? null : Boolean.valueOf(word);
                        }
                    }
                    int start = i;
                    while (i < s.length() && "+-0123456789.eE".indexOf(s.charAt(i)) >= 0) {
                        i++;
                    }
                    String n = s.substring(start, i);
                    if (n.isEmpty()) {
                        throw new IllegalArgumentException("unexpected " + c + " at " + start);
                    }
                    return n.matches("-?\\d+") ? (Object) Long.valueOf(n) : Double.valueOf(n);
            }
        }

        private String string() {
            expect('"');
            StringBuilder out = new StringBuilder();
            while (true) {
                char c = next();
                if (c == '"') {
                    return out.toString();
                }
                if (c != '\\') {
                    out.append(c);
                    continue;
                }
                char e = next();
                switch (e) {
                    case 'b' -> out.append('\b');
                    case 'f' -> out.append('\f');
                    case 'n' -> out.append('\n');
                    case 'r' -> out.append('\r');
                    case 't' -> out.append('\t');
                    case 'u' -> {
                        out.append((char) Integer.parseInt(s.substring(i, i + 4), 16));
                        i += 4;
                    }
                    default -> out.append(e);
                }
            }
        }
    }
}
