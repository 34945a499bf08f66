#if canImport(Security)
import Foundation
import Security

/// The store's 32-byte encryption key, kept in the iOS Keychain (this device only, available
/// after the first unlock so background sync can open the store). Generated on first use.
public enum KeychainKey {
    private static let service = "org.yilian.store"
    private static let account = "store-key"

    /// The store key, creating a fresh random one the first time.
    public static func storeKey() throws -> Data {
        let query: [String: Any] = [
            kSecClass as String: kSecClassGenericPassword,
            kSecAttrService as String: service,
            kSecAttrAccount as String: account,
            kSecReturnData as String: true,
        ]
        var item: CFTypeRef?
        let found = SecItemCopyMatching(query as CFDictionary, &item)
        if found == errSecSuccess, let data = item as? Data { return data }
        guard found == errSecItemNotFound else { throw KeychainError(status: found) }

        var key = Data(count: 32)
        let generated = key.withUnsafeMutableBytes { SecRandomCopyBytes(kSecRandomDefault, 32, $0.baseAddress!) }
        guard generated == errSecSuccess else { throw KeychainError(status: generated) }
        let add: [String: Any] = [
            kSecClass as String: kSecClassGenericPassword,
            kSecAttrService as String: service,
            kSecAttrAccount as String: account,
            kSecAttrAccessible as String: kSecAttrAccessibleAfterFirstUnlockThisDeviceOnly,
            kSecValueData as String: key,
        ]
        let added = SecItemAdd(add as CFDictionary, nil)
        guard added == errSecSuccess else { throw KeychainError(status: added) }
        return key
    }
}

/// A Keychain call failed with `status`.
public struct KeychainError: Error {
    /// The OSStatus.
    public let status: OSStatus
}
#endif
