import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

import org.apache.zookeeper.AddWatchMode;
import org.apache.zookeeper.AsyncCallback;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.Op;
import org.apache.zookeeper.OpResult;
import org.apache.zookeeper.WatchedEvent;
import org.apache.zookeeper.Watcher;
import org.apache.zookeeper.ZooDefs;
import org.apache.zookeeper.ZooKeeper;
import org.apache.zookeeper.data.ACL;
import org.apache.zookeeper.data.ClientInfo;
import org.apache.zookeeper.data.Id;
import org.apache.zookeeper.data.Stat;

/**
 * Script driver for the stock Java ZooKeeper client (zkernel integration tests).
 *
 * <p>Usage: {@code java -cp ... ZkScript HOST:PORT < script}. Commands are read from stdin one
 * line at a time and executed in order (so a test may feed them interactively). Every command
 * prints exactly one JSON line (its result); every watch event prints one JSON line when the
 * client delivers it. All ZooKeeper operations use the asynchronous API, so results and watch
 * events of one session are printed by that session's event thread in the order the client
 * received them from the server.
 *
 * <p>Line syntax: {@code [label:] [@session] command args... [key=value...]}. Tokens are split
 * on blanks; double quotes group (with backslash escapes); {@code ~} as data means null data.
 * See tests/integration/client_drivers.py for the command list.
 */
public class ZkScript {
    static String defaultConnect;
    static final Object OUT = new Object();
    static final Map<String, Session> sessions = new LinkedHashMap<>();
    static Session current;
    static final List<Ev> events = new ArrayList<>();
    static int counter = 0;

    static final class Ev {
        final String session;
        final String type;
        final String state;
        final String path;
        boolean consumed;

        Ev(String session, String type, String state, String path) {
            this.session = session;
            this.type = type;
            this.state = state;
            this.path = path;
        }
    }

    static final class Session {
        final String name;
        ZooKeeper zk;
        Watcher defaultWatcher;
        final Map<String, Watcher> named = new HashMap<>();

        Session(String name) {
            this.name = name;
        }

        Watcher watcher(String wname) {
            if (wname.equals("default")) {
                return defaultWatcher;
            }
            return named.computeIfAbsent(wname, n -> new EventPrinter(this, n));
        }
    }

    static final class EventPrinter implements Watcher {
        final Session session;
        final String wname;

        EventPrinter(Session session, String wname) {
            this.session = session;
            this.wname = wname;
        }

        @Override
        public void process(WatchedEvent e) {
            // Connection-state events go to every registered watcher; report them once.
            if (e.getType() == Event.EventType.None && !wname.equals("default")) {
                return;
            }
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("s", session.name);
            m.put("event", e.getType().name());
            m.put("state", e.getState().name());
            m.put("path", e.getPath());
            m.put("w", wname);
            synchronized (events) {
                // printed before any waiter can see it, so waits come after their event
                emit(m);
                events.add(new Ev(session.name, e.getType().name(), e.getState().name(), e.getPath()));
                events.notifyAll();
            }
        }
    }

    // ------------------------------------------------------------------ JSON output

    static void emit(Map<String, Object> m) {
        String line = json(m);
        synchronized (OUT) {
            System.out.println(line);
            System.out.flush();
        }
    }

    static String json(Object o) {
        StringBuilder sb = new StringBuilder();
        jsonTo(sb, o);
        return sb.toString();
    }

    @SuppressWarnings("unchecked")
    static void jsonTo(StringBuilder sb, Object o) {
        if (o == null) {
            sb.append("null");
        } else if (o instanceof String) {
            String s = (String) o;
            sb.append('"');
            for (int i = 0; i < s.length(); i++) {
                char c = s.charAt(i);
                switch (c) {
                    case '"': sb.append("\\\""); break;
                    case '\\': sb.append("\\\\"); break;
                    case '\n': sb.append("\\n"); break;
                    case '\r': sb.append("\\r"); break;
                    case '\t': sb.append("\\t"); break;
                    default:
                        if (c < 0x20) {
                            sb.append(String.format("\\u%04x", (int) c));
                        } else {
                            sb.append(c);
                        }
                }
            }
            sb.append('"');
        } else if (o instanceof Number || o instanceof Boolean) {
            sb.append(o);
        } else if (o instanceof Map) {
            sb.append('{');
            boolean first = true;
            for (Map.Entry<String, Object> e : ((Map<String, Object>) o).entrySet()) {
                if (!first) {
                    sb.append(',');
                }
                first = false;
                jsonTo(sb, e.getKey());
                sb.append(':');
                jsonTo(sb, e.getValue());
            }
            sb.append('}');
        } else if (o instanceof List) {
            sb.append('[');
            boolean first = true;
            for (Object x : (List<Object>) o) {
                if (!first) {
                    sb.append(',');
                }
                first = false;
                jsonTo(sb, x);
            }
            sb.append(']');
        } else {
            jsonTo(sb, o.toString());
        }
    }

    static Map<String, Object> stat(Stat s) {
        if (s == null) {
            return null;
        }
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("czxid", s.getCzxid());
        m.put("mzxid", s.getMzxid());
        m.put("ctime", s.getCtime());
        m.put("mtime", s.getMtime());
        m.put("version", s.getVersion());
        m.put("cversion", s.getCversion());
        m.put("aversion", s.getAversion());
        m.put("ephemeralOwner", s.getEphemeralOwner());
        m.put("dataLength", s.getDataLength());
        m.put("numChildren", s.getNumChildren());
        m.put("pzxid", s.getPzxid());
        return m;
    }

    static String str(byte[] b) {
        return b == null ? null : new String(b, StandardCharsets.UTF_8);
    }

    static List<Object> acls(List<ACL> acl) {
        if (acl == null) {
            return null;
        }
        List<Object> out = new ArrayList<>();
        for (ACL a : acl) {
            List<Object> e = new ArrayList<>();
            e.add(a.getPerms());
            e.add(a.getId().getScheme());
            e.add(a.getId().getId());
            out.add(e);
        }
        return out;
    }

    static String hex(byte[] b) {
        StringBuilder sb = new StringBuilder();
        for (byte x : b) {
            sb.append(String.format("%02x", x & 0xff));
        }
        return sb.toString();
    }

    static byte[] unhex(String s) {
        byte[] b = new byte[s.length() / 2];
        for (int i = 0; i < b.length; i++) {
            b[i] = (byte) Integer.parseInt(s.substring(2 * i, 2 * i + 2), 16);
        }
        return b;
    }

    // ------------------------------------------------------------------ parsing

    static List<String> tokenize(String line) {
        List<String> out = new ArrayList<>();
        int i = 0;
        int n = line.length();
        while (i < n) {
            char c = line.charAt(i);
            if (Character.isWhitespace(c)) {
                i++;
                continue;
            }
            StringBuilder sb = new StringBuilder();
            boolean quoted = false;
            while (i < n && !Character.isWhitespace(line.charAt(i))) {
                c = line.charAt(i);
                if (c == '"') {
                    quoted = true;
                    i++;
                    while (i < n && line.charAt(i) != '"') {
                        if (line.charAt(i) == '\\' && i + 1 < n) {
                            i++;
                            char e = line.charAt(i);
                            sb.append(e == 'n' ? '\n' : e == 't' ? '\t' : e);
                        } else {
                            sb.append(line.charAt(i));
                        }
                        i++;
                    }
                    i++;
                } else {
                    sb.append(c);
                    i++;
                }
            }
            // An empty quoted token ("") is kept; it stands for empty data.
            out.add(quoted && sb.length() == 0 ? "\u0000EMPTY" : sb.toString());
        }
        return out;
    }

    /** Positional arguments and key=value options of one command. */
    static final class Args {
        final List<String> pos = new ArrayList<>();
        final Map<String, String> opt = new HashMap<>();

        Args(List<String> toks) {
            for (String t : toks) {
                int eq = t.indexOf('=');
                if (eq > 0 && t.substring(0, eq).matches("[a-z_]+")) {
                    opt.put(t.substring(0, eq), t.substring(eq + 1));
                } else if (t.matches("[a-z_]+") && FLAGS.contains(t)) {
                    opt.put(t, "");
                } else {
                    pos.add(t.equals("\u0000EMPTY") ? "" : t);
                }
            }
        }

        String p(int i) {
            if (i >= pos.size()) {
                throw new IllegalArgumentException("missing argument " + (i + 1));
            }
            return pos.get(i);
        }

        String p(int i, String dflt) {
            return i < pos.size() ? pos.get(i) : dflt;
        }

        int pi(int i, int dflt) {
            return i < pos.size() ? Integer.parseInt(pos.get(i)) : dflt;
        }

        boolean has(String k) {
            return opt.containsKey(k);
        }
    }

    static final List<String> FLAGS = List.of("watch", "local", "badpw");

    static byte[] data(String s) {
        return s.equals("~") ? null : s.getBytes(StandardCharsets.UTF_8);
    }

    static CreateMode mode(String s) {
        switch (s.toUpperCase()) {
            case "P": return CreateMode.PERSISTENT;
            case "E": return CreateMode.EPHEMERAL;
            case "PS": return CreateMode.PERSISTENT_SEQUENTIAL;
            case "ES": return CreateMode.EPHEMERAL_SEQUENTIAL;
            case "C": return CreateMode.CONTAINER;
            case "T": case "TTL": return CreateMode.PERSISTENT_WITH_TTL;
            case "TS": case "STTL": return CreateMode.PERSISTENT_SEQUENTIAL_WITH_TTL;
            default: return CreateMode.valueOf(s.toUpperCase());
        }
    }

    static int perms(String s) {
        if (s.matches("-?[0-9]+")) {
            return Integer.parseInt(s);
        }
        int p = 0;
        for (char c : s.toCharArray()) {
            switch (c) {
                case 'r': p |= ZooDefs.Perms.READ; break;
                case 'w': p |= ZooDefs.Perms.WRITE; break;
                case 'c': p |= ZooDefs.Perms.CREATE; break;
                case 'd': p |= ZooDefs.Perms.DELETE; break;
                case 'a': p |= ZooDefs.Perms.ADMIN; break;
                default: throw new IllegalArgumentException("bad perm " + c);
            }
        }
        return p;
    }

    /** open | read | creator | scheme:id:perms[,scheme:id:perms...]. */
    static List<ACL> acl(String spec) {
        if (spec == null || spec.equals("open")) {
            return ZooDefs.Ids.OPEN_ACL_UNSAFE;
        }
        if (spec.equals("read")) {
            return ZooDefs.Ids.READ_ACL_UNSAFE;
        }
        if (spec.equals("creator")) {
            return ZooDefs.Ids.CREATOR_ALL_ACL;
        }
        List<ACL> out = new ArrayList<>();
        for (String e : spec.split(",")) {
            int a = e.indexOf(':');
            int b = e.lastIndexOf(':');
            out.add(new ACL(perms(e.substring(b + 1)), new Id(e.substring(0, a), e.substring(a + 1, b))));
        }
        return out;
    }

    static Watcher.WatcherType watcherType(String s) {
        return Watcher.WatcherType.valueOf(s.substring(0, 1).toUpperCase() + s.substring(1).toLowerCase());
    }

    // ------------------------------------------------------------------ execution

    /** Result being built for one command; printed exactly once. */
    static final class Res {
        final Map<String, Object> m = new LinkedHashMap<>();
        final CompletableFuture<Void> done = new CompletableFuture<>();
        volatile boolean printed;

        Res(String session, String label, String cmd, int n) {
            m.put("s", session);
            m.put("n", n);
            if (label != null) {
                m.put("label", label);
            }
            m.put("cmd", cmd);
        }

        Res put(String k, Object v) {
            m.put(k, v);
            return this;
        }

        synchronized void finish() {
            if (printed) {
                return;
            }
            printed = true;
            emit(m);
            done.complete(null);
        }

        void ok() {
            m.put("ok", true);
            finish();
        }

        void rc(int rc) {
            if (rc == 0) {
                m.put("ok", true);
            } else {
                m.put("ok", false);
                KeeperException.Code c = KeeperException.Code.get(rc);
                m.put("err", c == null ? "UNKNOWN" : c.name());
                m.put("code", rc);
            }
            finish();
        }

        void fail(String err, String msg) {
            m.put("ok", false);
            m.put("err", err);
            if (msg != null) {
                m.put("msg", msg);
            }
            finish();
        }
    }

    static Session sess(String name) {
        Session s = sessions.get(name);
        if (s == null) {
            throw new IllegalArgumentException("no session " + name);
        }
        return s;
    }

    public static void main(String[] argv) throws Exception {
        defaultConnect = argv.length > 0 ? argv[0] : "127.0.0.1:2181";
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String line;
        while ((line = in.readLine()) != null) {
            String t = line.trim();
            if (t.isEmpty() || t.startsWith("#")) {
                continue;
            }
            run(t);
        }
        for (Session s : sessions.values()) {
            if (s.zk != null) {
                s.zk.close(5000);
            }
        }
        System.out.flush();
        System.exit(0);
    }

    static void run(String line) {
        List<String> toks = tokenize(line);
        String label = null;
        Session s = current;
        // "label:" and "@session" prefixes, in either order
        for (int k = 0; k < 2 && !toks.isEmpty(); k++) {
            String t0 = toks.get(0);
            if (label == null && t0.endsWith(":") && t0.length() > 1 && !t0.startsWith("/")
                    && !t0.startsWith("@")) {
                label = toks.remove(0);
                label = label.substring(0, label.length() - 1);
            } else if (t0.startsWith("@") && t0.length() > 1) {
                s = sessions.get(toks.remove(0).substring(1));
            }
        }
        String cmd = toks.isEmpty() ? "" : toks.remove(0);
        Res r = new Res(s == null ? null : s.name, label, cmd, ++counter);
        try {
            if (s == null && !cmd.equals("connect") && !NO_SESSION.contains(cmd)) {
                throw new IllegalArgumentException("no session");
            }
            exec(s, cmd, toks, r);
            if (!r.done.isDone()) {
                try {
                    r.done.get(60, TimeUnit.SECONDS);
                } catch (TimeoutException e) {
                    r.fail("CLIENT_TIMEOUT", "no callback within 60 s");
                }
            }
        } catch (KeeperException e) {
            r.rc(e.code().intValue());
        } catch (Exception e) {
            r.put("exc", e.getClass().getSimpleName());
            r.fail("CLIENT_EXCEPTION", String.valueOf(e.getMessage()));
        }
    }

    static final List<String> NO_SESSION = List.of("sleep", "echo", "use", "wait_event", "wait_state");

    static void exec(Session s, String cmd, List<String> toks, Res r) throws Exception {
        Args a = new Args(toks);
        switch (cmd) {
            case "connect": connect(a, r); return;
            case "use":
                current = sess(a.p(0));
                r.ok();
                return;
            case "sleep":
                Thread.sleep(Long.parseLong(a.p(0)));
                r.ok();
                return;
            case "echo":
                r.put("text", String.join(" ", a.pos)).ok();
                return;
            case "wait_event":
                waitEvent(a.p(0), a.p(1), a.p(2).equals("-") ? null : a.p(2), null, a.pi(3, 15000), r);
                return;
            case "wait_state":
                waitEvent(a.p(0), "None", null, a.p(1), a.pi(2, 15000), r);
                return;
            default:
                break;
        }
        ZooKeeper zk = s.zk;
        switch (cmd) {
            case "session": {
                r.put("session_id", zk.getSessionId());
                r.put("session_hex", "0x" + Long.toHexString(zk.getSessionId()));
                r.put("passwd", hex(zk.getSessionPasswd()));
                r.put("timeout", zk.getSessionTimeout());
                r.put("state", zk.getState().name());
                r.ok();
                return;
            }
            case "close": {
                boolean closed = zk.close(10000);
                s.zk = null;
                r.put("closed", closed).ok();
                return;
            }
            case "create":
            case "create2": {
                String path = a.p(0);
                byte[] d = data(a.p(1, "~"));
                CreateMode m = mode(a.p(2, "P"));
                List<ACL> acl = acl(a.opt.get("acl"));
                AsyncCallback.Create2Callback cb2 = (rc, p, ctx, name, st) -> {
                    if (rc == 0) {
                        r.put("path", name).put("stat", stat(st));
                    }
                    r.rc(rc);
                };
                if (a.has("ttl")) {
                    zk.create(path, d, acl, m, cb2, null, Long.parseLong(a.opt.get("ttl")));
                } else if (cmd.equals("create2")) {
                    zk.create(path, d, acl, m, cb2, null);
                } else {
                    zk.create(path, d, acl, m, (AsyncCallback.StringCallback) (rc, p, ctx, name) -> {
                        if (rc == 0) {
                            r.put("path", name);
                        }
                        r.rc(rc);
                    }, null);
                }
                return;
            }
            case "delete":
                zk.delete(a.p(0), a.pi(1, -1), (rc, p, ctx) -> r.rc(rc), null);
                return;
            case "exists": {
                AsyncCallback.StatCallback cb = (rc, p, ctx, st) -> {
                    if (rc == 0) {
                        r.put("stat", stat(st));
                    }
                    r.rc(rc);
                };
                if (a.opt.containsKey("watch") && !a.opt.get("watch").isEmpty()) {
                    zk.exists(a.p(0), s.watcher(a.opt.get("watch")), cb, null);
                } else {
                    zk.exists(a.p(0), a.has("watch"), cb, null);
                }
                return;
            }
            case "get": {
                AsyncCallback.DataCallback cb = (rc, p, ctx, d, st) -> {
                    if (rc == 0) {
                        r.put("data", str(d)).put("stat", stat(st));
                    }
                    r.rc(rc);
                };
                if (a.opt.containsKey("watch") && !a.opt.get("watch").isEmpty()) {
                    zk.getData(a.p(0), s.watcher(a.opt.get("watch")), cb, null);
                } else {
                    zk.getData(a.p(0), a.has("watch"), cb, null);
                }
                return;
            }
            case "set":
                zk.setData(a.p(0), data(a.p(1)), a.pi(2, -1), (rc, p, ctx, st) -> {
                    if (rc == 0) {
                        r.put("stat", stat(st));
                    }
                    r.rc(rc);
                }, null);
                return;
            case "ls": {
                AsyncCallback.ChildrenCallback cb = (rc, p, ctx, ch) -> {
                    if (rc == 0) {
                        List<String> c = new ArrayList<>(ch);
                        Collections.sort(c);
                        r.put("children", c);
                    }
                    r.rc(rc);
                };
                if (a.opt.containsKey("watch") && !a.opt.get("watch").isEmpty()) {
                    zk.getChildren(a.p(0), s.watcher(a.opt.get("watch")), cb, null);
                } else {
                    zk.getChildren(a.p(0), a.has("watch"), cb, null);
                }
                return;
            }
            case "ls2": {
                AsyncCallback.Children2Callback cb = (rc, p, ctx, ch, st) -> {
                    if (rc == 0) {
                        List<String> c = new ArrayList<>(ch);
                        Collections.sort(c);
                        r.put("children", c).put("stat", stat(st));
                    }
                    r.rc(rc);
                };
                if (a.opt.containsKey("watch") && !a.opt.get("watch").isEmpty()) {
                    zk.getChildren(a.p(0), s.watcher(a.opt.get("watch")), cb, null);
                } else {
                    zk.getChildren(a.p(0), a.has("watch"), cb, null);
                }
                return;
            }
            case "count":
                zk.getAllChildrenNumber(a.p(0), (rc, p, ctx, num) -> {
                    if (rc == 0) {
                        r.put("count", num);
                    }
                    r.rc(rc);
                }, null);
                return;
            case "ephemerals": {
                AsyncCallback.EphemeralsCallback cb = (rc, ctx, paths) -> {
                    if (rc == 0) {
                        List<String> c = new ArrayList<>(paths);
                        Collections.sort(c);
                        r.put("paths", c);
                    }
                    r.rc(rc);
                };
                if (a.pos.isEmpty()) {
                    zk.getEphemerals(cb, null);
                } else {
                    zk.getEphemerals(a.p(0), cb, null);
                }
                return;
            }
            case "getacl":
                zk.getACL(a.p(0), new Stat(), (rc, p, ctx, acl, st) -> {
                    if (rc == 0) {
                        r.put("acl", acls(acl)).put("stat", stat(st));
                    }
                    r.rc(rc);
                }, null);
                return;
            case "setacl":
                zk.setACL(a.p(0), acl(a.p(1)), a.pi(2, -1), (rc, p, ctx, st) -> {
                    if (rc == 0) {
                        r.put("stat", stat(st));
                    }
                    r.rc(rc);
                }, null);
                return;
            case "sync":
                zk.sync(a.p(0), (rc, p, ctx) -> {
                    if (rc == 0) {
                        r.put("path", p);
                    }
                    r.rc(rc);
                }, null);
                return;
            case "addauth":
                zk.addAuthInfo(a.p(0), a.p(1).getBytes(StandardCharsets.UTF_8));
                r.ok();
                return;
            case "whoami": {
                List<Object> out = new ArrayList<>();
                List<ClientInfo> infos = zk.whoAmI();
                if (infos == null) {
                    r.fail("CLIENT_NULL", "whoAmI returned null");
                    return;
                }
                for (ClientInfo ci : infos) {
                    out.add(List.of(ci.getAuthScheme(), ci.getUser()));
                }
                out.sort((x, y) -> x.toString().compareTo(y.toString()));
                r.put("identities", out).ok();
                return;
            }
            case "addwatch": {
                AddWatchMode m = AddWatchMode.valueOf(a.p(1).toUpperCase());
                AsyncCallback.VoidCallback cb = (rc, p, ctx) -> r.rc(rc);
                String w = a.opt.get("watch");
                if (w == null || w.isEmpty() || w.equals("default")) {
                    zk.addWatch(a.p(0), m, cb, null);
                } else {
                    zk.addWatch(a.p(0), s.watcher(w), m, cb, null);
                }
                return;
            }
            case "removewatches":
                zk.removeWatches(a.p(0), s.watcher(a.p(1)), watcherType(a.p(2)), a.has("local"),
                        (rc, p, ctx) -> r.rc(rc), null);
                return;
            case "removeallwatches":
                zk.removeAllWatches(a.p(0), watcherType(a.p(1)), a.has("local"),
                        (rc, p, ctx) -> r.rc(rc), null);
                return;
            case "multi":
                multi(zk, toks, r);
                return;
            default:
                throw new IllegalArgumentException("unknown command " + cmd);
        }
    }

    static void connect(Args a, Res r) throws Exception {
        String name = a.p(0);
        Session s = new Session(name);
        s.defaultWatcher = new EventPrinter(s, "default");
        String cs = a.opt.getOrDefault("cs", defaultConnect);
        int timeout = Integer.parseInt(a.opt.getOrDefault("timeout", "30000"));
        Session old = sessions.put(name, s);
        if (old != null && old.zk != null) {
            old.zk.close(5000);
        }
        current = s;
        r.m.put("s", name);
        int before;
        synchronized (events) {
            before = events.size();
        }
        if (a.has("session") || a.has("sid")) {
            long sid;
            byte[] pw;
            if (a.has("session")) {
                ZooKeeper other = sess(a.opt.get("session")).zk;
                sid = other.getSessionId();
                pw = other.getSessionPasswd().clone();
            } else {
                sid = Long.parseUnsignedLong(a.opt.get("sid").replaceFirst("^0x", ""), 16);
                pw = a.has("pw") ? unhex(a.opt.get("pw")) : new byte[16];
            }
            if (a.has("badpw")) {
                pw[0] ^= 0x55;
            }
            s.zk = new ZooKeeper(cs, timeout, s.defaultWatcher, sid, pw);
        } else {
            s.zk = new ZooKeeper(cs, timeout, s.defaultWatcher);
        }
        long deadline = System.currentTimeMillis() + Integer.parseInt(a.opt.getOrDefault("wait", "15000"));
        synchronized (events) {
            while (true) {
                for (int i = before; i < events.size(); i++) {
                    Ev e = events.get(i);
                    if (!e.consumed && e.session.equals(name) && e.type.equals("None")) {
                        e.consumed = true;
                        r.put("state", e.state);
                        if (e.state.equals("SyncConnected")) {
                            r.put("session_id", s.zk.getSessionId());
                            r.put("timeout", s.zk.getSessionTimeout());
                            r.ok();
                        } else {
                            r.fail(e.state.toUpperCase(), null);
                        }
                        return;
                    }
                }
                long left = deadline - System.currentTimeMillis();
                if (left <= 0) {
                    r.fail("CONNECT_TIMEOUT", null);
                    return;
                }
                events.wait(left);
            }
        }
    }

    static void waitEvent(String sname, String type, String path, String state, int timeoutMs, Res r)
            throws InterruptedException {
        r.m.put("s", sname);
        long deadline = System.currentTimeMillis() + timeoutMs;
        synchronized (events) {
            while (true) {
                for (Ev e : events) {
                    if (!e.consumed && e.session.equals(sname) && e.type.equals(type)
                            && (state == null || state.equals(e.state))
                            && (path == null || path.equals(e.path))) {
                        e.consumed = true;
                        r.put("event", e.type).put("state", e.state).put("path", e.path);
                        r.ok();
                        return;
                    }
                }
                long left = deadline - System.currentTimeMillis();
                if (left <= 0) {
                    r.fail("TIMEOUT", null);
                    return;
                }
                events.wait(left);
            }
        }
    }

    static void multi(ZooKeeper zk, List<String> toks, Res r) {
        List<List<String>> parts = new ArrayList<>();
        List<String> cur = new ArrayList<>();
        for (String t : toks) {
            if (t.equals("|")) {
                parts.add(cur);
                cur = new ArrayList<>();
            } else {
                cur.add(t);
            }
        }
        if (!cur.isEmpty()) {
            parts.add(cur);
        }
        List<Op> ops = new ArrayList<>();
        for (List<String> p : parts) {
            String op = p.remove(0);
            Args a = new Args(p);
            switch (op) {
                case "create": {
                    CreateMode m = mode(a.p(2, "P"));
                    List<ACL> acl = acl(a.opt.get("acl"));
                    if (a.has("ttl")) {
                        ops.add(Op.create(a.p(0), data(a.p(1, "~")), acl, m, Long.parseLong(a.opt.get("ttl"))));
                    } else {
                        ops.add(Op.create(a.p(0), data(a.p(1, "~")), acl, m));
                    }
                    break;
                }
                case "delete": ops.add(Op.delete(a.p(0), a.pi(1, -1))); break;
                case "set": ops.add(Op.setData(a.p(0), data(a.p(1)), a.pi(2, -1))); break;
                case "check": ops.add(Op.check(a.p(0), a.pi(1, -1))); break;
                case "get": ops.add(Op.getData(a.p(0))); break;
                case "ls": ops.add(Op.getChildren(a.p(0))); break;
                default: throw new IllegalArgumentException("unknown multi op " + op);
            }
        }
        zk.multi(ops, (rc, path, ctx, results) -> {
            if (results != null) {
                List<Object> out = new ArrayList<>();
                for (OpResult res : results) {
                    out.add(opResult(res));
                }
                r.put("results", out);
            }
            r.rc(rc);
        }, null);
    }

    static Map<String, Object> opResult(OpResult res) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("type", res.getType());
        if (res instanceof OpResult.ErrorResult) {
            m.put("op", "error");
            m.put("err", ((OpResult.ErrorResult) res).getErr());
        } else if (res instanceof OpResult.CreateResult) {
            OpResult.CreateResult c = (OpResult.CreateResult) res;
            m.put("op", "create");
            m.put("path", c.getPath());
            m.put("stat", stat(c.getStat()));
        } else if (res instanceof OpResult.DeleteResult) {
            m.put("op", "delete");
        } else if (res instanceof OpResult.SetDataResult) {
            m.put("op", "set");
            m.put("stat", stat(((OpResult.SetDataResult) res).getStat()));
        } else if (res instanceof OpResult.CheckResult) {
            m.put("op", "check");
        } else if (res instanceof OpResult.GetDataResult) {
            OpResult.GetDataResult g = (OpResult.GetDataResult) res;
            m.put("op", "get");
            m.put("data", str(g.getData()));
            m.put("stat", stat(g.getStat()));
        } else if (res instanceof OpResult.GetChildrenResult) {
            List<String> c = new ArrayList<>(((OpResult.GetChildrenResult) res).getChildren());
            Collections.sort(c);
            m.put("op", "ls");
            m.put("children", c);
        } else {
            m.put("op", res.getClass().getSimpleName());
        }
        return m;
    }
}
